// Reading the tensors of a few files as large sequential chunks into reused buffers, one chunk ahead
// of the consumer (double buffering), instead of faulting a memory mapping in page by page.
//
// plan_read_chunks is pure: it groups byte ranges (tensors) in file order into chunks of at most
// `capacity` bytes, splitting a range that does not fit at an element boundary, so every piece holds
// whole elements. ChunkStream reads the chunks on a background thread while the caller uses the
// previous one.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace dreambooth::checkpoint {

// A byte range of one file that must be read; `id` is the caller's (e.g. the tensor's index).
struct ByteRange {
  size_t file = 0;
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t element_size = 1;  // pieces hold whole elements: split only at multiples of this from `begin`
  size_t id = 0;
};

// Part of one range inside a chunk: the range's bytes [range_offset, range_offset + bytes) are at
// [chunk_offset, chunk_offset + bytes) of the chunk's buffer.
struct ChunkPiece {
  size_t id = 0;
  uint64_t range_offset = 0;
  uint64_t chunk_offset = 0;
  uint64_t bytes = 0;
};

// The bytes [begin, end) of one file, read with one call; the pieces are in file order.
struct ReadChunk {
  size_t file = 0;
  uint64_t begin = 0;
  uint64_t end = 0;
  std::vector<ChunkPiece> pieces;
};

// Chunk starts are aligned down to this many bytes (so an element aligned in the file is aligned in the
// buffer); the few bytes before a range are read and ignored.
constexpr uint64_t kChunkAlignment = 64;

// Groups `ranges` (any order, not overlapping) by (file, begin) into chunks of at most `capacity` bytes.
// A chunk also spans a gap of at most `max_gap` unused bytes between two ranges of the same file (one
// read instead of two); larger gaps start a new chunk. Empty ranges get no piece. `capacity` must hold
// the alignment plus one element of every range (a runtime error otherwise).
std::vector<ReadChunk> plan_read_chunks(std::vector<ByteRange> ranges, uint64_t capacity, uint64_t max_gap);

// Reads `chunks` in order on one background thread into `buffers` buffers of `capacity` bytes, reused
// in turn; the calling thread takes them one by one with next(). While every buffer is in use, the
// reader hints (`prefetch`) the chunks after them, at most `prefetch_chunks` ahead, so the disk keeps
// streaming into the page cache. An error in `read` is rethrown by the next() that reaches its chunk.
// The destructor stops the reader and waits for it.
class ChunkStream {
 public:
  // Fills `destination` with the chunk's bytes [begin, end).
  using ReadFn = std::function<void(const ReadChunk& chunk, unsigned char* destination)>;
  // Starts fetching the chunk's bytes without waiting for them (a hint; may do nothing).
  using PrefetchFn = std::function<void(const ReadChunk& chunk)>;

  ChunkStream(std::vector<ReadChunk> chunks, uint64_t capacity, size_t buffers, ReadFn read,
              PrefetchFn prefetch = nullptr, size_t prefetch_chunks = 0);
  ~ChunkStream();
  ChunkStream(const ChunkStream&) = delete;
  ChunkStream& operator=(const ChunkStream&) = delete;

  // Hands the previous chunk's buffer back to the reader and waits for the next chunk; nullptr after
  // the last one. The bytes stay valid until the following call.
  const unsigned char* next();
  // The chunk next() returned last.
  const ReadChunk& current() const { return chunks_[current_]; }

 private:
  struct FreeDeleter {
    void operator()(unsigned char* p) const;
  };
  void read_all();

  std::vector<ReadChunk> chunks_;
  std::vector<std::unique_ptr<unsigned char, FreeDeleter>> buffers_;
  ReadFn read_;
  PrefetchFn prefetch_;
  size_t prefetch_chunks_ = 0;
  std::mutex mutex_;
  std::condition_variable changed_;
  size_t ready_ = 0;     // chunks [0, ready_) have been read
  size_t released_ = 0;  // chunks [0, released_) have been used: their buffers are free
  size_t next_ = 0;      // the chunk the next call of next() returns
  size_t current_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread reader_;
};

}  // namespace dreambooth::checkpoint
