#include "dreambooth/checkpoint/chunked_read.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <string>
#include <tuple>

#include "dreambooth/core/error.h"

namespace dreambooth::checkpoint {

std::vector<ReadChunk> plan_read_chunks(std::vector<ByteRange> ranges, uint64_t capacity, uint64_t max_gap) {
  std::sort(ranges.begin(), ranges.end(), [](const ByteRange& a, const ByteRange& b) {
    return std::tie(a.file, a.begin, a.end) < std::tie(b.file, b.begin, b.end);
  });
  std::vector<ReadChunk> chunks;
  for (const ByteRange& range : ranges) {
    if (range.element_size == 0 || (range.end - range.begin) % range.element_size != 0 || range.begin > range.end)
      throw Error(ErrorKind::Runtime, "plan_read_chunks: range " + std::to_string(range.id) +
                                          " is not a whole number of elements");
    uint64_t pos = range.begin;
    while (pos < range.end) {
      ReadChunk* chunk = chunks.empty() ? nullptr : &chunks.back();
      // Continue the last chunk when it is in the same file, the gap is small and an element still fits.
      bool fits = chunk && chunk->file == range.file && pos >= chunk->end && pos - chunk->end <= max_gap &&
                  pos - chunk->begin + range.element_size <= capacity;
      if (!fits) {
        ReadChunk fresh;
        fresh.file = range.file;
        fresh.begin = pos / kChunkAlignment * kChunkAlignment;
        fresh.end = fresh.begin;
        if (pos - fresh.begin + range.element_size > capacity)
          throw Error(ErrorKind::Runtime, "plan_read_chunks: a " + std::to_string(capacity) +
                                              "-byte chunk cannot hold one element of range " +
                                              std::to_string(range.id));
        chunks.push_back(std::move(fresh));
        chunk = &chunks.back();
      }
      const uint64_t room = (capacity - (pos - chunk->begin)) / range.element_size * range.element_size;
      const uint64_t take = std::min(range.end - pos, room);
      chunk->pieces.push_back({range.id, pos - range.begin, pos - chunk->begin, take});
      pos += take;
      chunk->end = pos;
    }
  }
  return chunks;
}

void ChunkStream::FreeDeleter::operator()(unsigned char* p) const { std::free(p); }

ChunkStream::ChunkStream(std::vector<ReadChunk> chunks, uint64_t capacity, size_t buffers, ReadFn read,
                         PrefetchFn prefetch, size_t prefetch_chunks)
    : chunks_(std::move(chunks)),
      read_(std::move(read)),
      prefetch_(std::move(prefetch)),
      prefetch_chunks_(prefetch_ ? prefetch_chunks : 0) {
  uint64_t largest = 0;
  for (const ReadChunk& chunk : chunks_) largest = std::max(largest, chunk.end - chunk.begin);
  if (largest > capacity) throw Error(ErrorKind::Runtime, "ChunkStream: a chunk is larger than the buffers");
  // Buffers only as large as the largest chunk, in 2 MiB pages when that large, faulted in now in one
  // call: fresh 4 KiB pages faulted one by one during the reads cost more than the reads on some VMs.
  const uint64_t huge = uint64_t{2} << 20;
  const uint64_t align = largest >= huge ? huge : 4096;
  const uint64_t bytes = std::max<uint64_t>(align, (largest + align - 1) / align * align);
  for (size_t i = 0; i < std::max<size_t>(buffers, 1) && i < chunks_.size(); ++i) {
    auto* p = static_cast<unsigned char*>(std::aligned_alloc(align, bytes));
    if (!p) throw std::bad_alloc();
    buffers_.emplace_back(p);
#ifdef MADV_HUGEPAGE
    if (align == huge) ::madvise(p, bytes, MADV_HUGEPAGE);
#endif
#ifdef MADV_POPULATE_WRITE
    ::madvise(p, bytes, MADV_POPULATE_WRITE);
#endif
  }
  if (!chunks_.empty()) reader_ = std::thread([this] { read_all(); });
}

ChunkStream::~ChunkStream() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (reader_.joinable()) reader_.join();
}

void ChunkStream::read_all() {
  size_t hinted = 0;  // chunks [0, hinted) have been read or prefetched
  for (size_t i = 0; i < chunks_.size(); ++i) {
    hinted = std::max(hinted, i + 1);
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (stop_) return;
        if (i < released_ + buffers_.size()) break;
        if (hinted >= chunks_.size() || hinted > i + prefetch_chunks_) {
          changed_.wait(lock, [&] { return stop_ || i < released_ + buffers_.size(); });
          if (stop_) return;
          break;
        }
      }
      try {
        prefetch_(chunks_[hinted++]);  // while the consumer holds every buffer
      } catch (...) {
        hinted = chunks_.size();  // a hint that fails is not an error; stop hinting
      }
    }
    try {
      read_(chunks_[i], buffers_[i % buffers_.size()].get());
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
      changed_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_ = i + 1;
    }
    changed_.notify_all();
  }
}

const unsigned char* ChunkStream::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (released_ < next_) {
    released_ = next_;  // chunks [0, next_) are used: their buffers go back to the reader
    changed_.notify_all();
  }
  if (next_ >= chunks_.size()) return nullptr;
  changed_.wait(lock, [&] { return ready_ > next_ || error_; });
  if (ready_ <= next_) std::rethrow_exception(error_);
  current_ = next_++;
  return buffers_[current_ % buffers_.size()].get();
}

}  // namespace dreambooth::checkpoint
