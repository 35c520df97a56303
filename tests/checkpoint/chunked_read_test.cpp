// Chunk planning (file order, capacity, element-boundary splits of straddling tensors, gaps, several
// files) and the double-buffered chunk stream (order, contents, prefetch hints, errors, early stop).
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include "dreambooth/checkpoint/chunked_read.h"
#include "dreambooth/core/error.h"

using namespace dreambooth::checkpoint;

namespace {

// Checks the invariants every plan must keep and returns, per range id, its bytes in piece order.
std::map<size_t, uint64_t> check_chunk_plan(const std::vector<ReadChunk>& chunks, const std::vector<ByteRange>& ranges,
                                            uint64_t capacity) {
  std::map<size_t, const ByteRange*> by_id;
  for (const auto& r : ranges) by_id[r.id] = &r;
  std::map<size_t, uint64_t> covered;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const ReadChunk& c = chunks[i];
    EXPECT_LE(c.end - c.begin, capacity) << "chunk " << i;
    EXPECT_EQ(c.begin % kChunkAlignment, 0u) << "chunk " << i;
    EXPECT_FALSE(c.pieces.empty()) << "chunk " << i;
    if (i > 0) {
      EXPECT_GE(c.file, chunks[i - 1].file) << "chunk " << i;
      if (chunks[i - 1].file == c.file) {  // forward only: a chunk starts at most an alignment before the last end
        EXPECT_GE(c.begin + kChunkAlignment, chunks[i - 1].end) << "chunk " << i;
      }
    }
    for (const ChunkPiece& p : c.pieces) {
      const ByteRange& r = *by_id.at(p.id);
      EXPECT_EQ(r.file, c.file);
      EXPECT_EQ(p.range_offset, covered[p.id]) << "range " << p.id << " is read out of order or with a hole";
      EXPECT_EQ(p.range_offset % r.element_size, 0u) << "range " << p.id << " split inside an element";
      EXPECT_EQ(p.bytes % r.element_size, 0u) << "range " << p.id << " split inside an element";
      EXPECT_EQ(c.begin + p.chunk_offset, r.begin + p.range_offset) << "range " << p.id;
      EXPECT_LE(p.chunk_offset + p.bytes, c.end - c.begin) << "range " << p.id;
      covered[p.id] += p.bytes;
    }
  }
  for (const auto& r : ranges) {
    if (r.end > r.begin) {
      EXPECT_EQ(covered[r.id], r.end - r.begin) << "range " << r.id;
    }
  }
  return covered;
}

}  // namespace

TEST(ChunkPlan, StraddlingRangeSplitsAtElementBoundaries) {
  // 100 bytes of 4-byte elements, then 500 bytes of 2-byte elements across three 256-byte chunks.
  const std::vector<ByteRange> ranges = {{0, 100, 600, 2, 1}, {0, 0, 100, 4, 0}};
  const auto chunks = plan_read_chunks(ranges, 256, 0);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].begin, 0u);
  EXPECT_EQ(chunks[0].end, 256u);
  ASSERT_EQ(chunks[0].pieces.size(), 2u);
  EXPECT_EQ(chunks[0].pieces[0].id, 0u);  // file order, not input order
  EXPECT_EQ(chunks[0].pieces[1].id, 1u);
  EXPECT_EQ(chunks[0].pieces[1].bytes, 156u);
  EXPECT_EQ(chunks[1].begin, 256u);
  EXPECT_EQ(chunks[1].pieces[0].range_offset, 156u);
  EXPECT_EQ(chunks[1].pieces[0].bytes, 256u);
  EXPECT_EQ(chunks[2].begin, 512u);
  EXPECT_EQ(chunks[2].pieces[0].range_offset, 412u);
  EXPECT_EQ(chunks[2].pieces[0].bytes, 88u);
  check_chunk_plan(chunks, ranges, 256);
}

TEST(ChunkPlan, OddOffsetsGapsAndFiles) {
  // Ranges at offsets that are not multiples of the alignment (chunk starts align down), gaps, files.
  std::vector<ByteRange> ranges;
  uint64_t offset = 6;
  size_t id = 0;
  for (uint64_t size : {12, 1000, 0, 8, 4096, 24}) {  // 4-byte elements, a 0-byte tensor among them
    ranges.push_back({0, offset, offset + size, 4, id++});
    offset += size;
  }
  ranges.push_back({0, offset + 10, offset + 30, 2, id++});     // a small gap: read through
  ranges.push_back({0, offset + 5000, offset + 5008, 8, id++});  // a large gap: a new chunk
  ranges.push_back({1, 0, 3000, 1, id++});                      // another file
  const uint64_t capacity = 1000;
  const auto chunks = plan_read_chunks(ranges, capacity, 64);
  check_chunk_plan(chunks, ranges, capacity);
  // The small gap joins its neighbour's chunk; the large one and the second file do not.
  auto chunk_of = [&](size_t range) {
    for (size_t i = 0; i < chunks.size(); ++i)
      for (const auto& p : chunks[i].pieces)
        if (p.id == range) return i;
    return chunks.size();
  };
  EXPECT_EQ(chunk_of(6), chunk_of(5));
  EXPECT_NE(chunk_of(7), chunk_of(6));
  EXPECT_EQ(chunks[chunk_of(7)].begin, (offset + 5000) / kChunkAlignment * kChunkAlignment);
  EXPECT_EQ(chunks.back().file, 1u);
  EXPECT_EQ(chunk_of(2), chunks.size());  // empty: no piece
}

TEST(ChunkPlan, CapacityBelowOneElementIsABug) {
  EXPECT_THROW(plan_read_chunks({{0, 60, 76, 16, 0}}, 16, 0), dreambooth::Error);
}

TEST(ChunkStream, DeliversEveryChunkInOrderThroughReusedBuffers) {
  std::vector<unsigned char> file(100000);
  std::iota(file.begin(), file.end(), 0);
  std::vector<ByteRange> ranges;
  for (uint64_t b = 0; b < file.size(); b += 777) ranges.push_back({0, b, std::min<uint64_t>(b + 777, file.size()), 1, ranges.size()});
  const uint64_t capacity = 4096;
  auto chunks = plan_read_chunks(ranges, capacity, 0);
  ASSERT_GT(chunks.size(), 20u);
  for (size_t buffers : {1, 2, 3}) {
    std::vector<unsigned char> rebuilt(file.size());
    ChunkStream stream(chunks, capacity, buffers, [&](const ReadChunk& c, unsigned char* out) {
      std::memcpy(out, file.data() + c.begin, c.end - c.begin);
    });
    size_t seen = 0;
    while (const unsigned char* data = stream.next()) {
      EXPECT_EQ(stream.current().begin, chunks[seen].begin);
      for (const auto& p : stream.current().pieces)
        std::memcpy(rebuilt.data() + ranges[p.id].begin + p.range_offset, data + p.chunk_offset, p.bytes);
      ++seen;
    }
    EXPECT_EQ(seen, chunks.size());
    EXPECT_EQ(stream.next(), nullptr);
    EXPECT_EQ(rebuilt, file) << buffers << " buffers";
  }
}

TEST(ChunkStream, ReadErrorReachesTheConsumerAtItsChunk) {
  auto chunks = plan_read_chunks({{0, 0, 10000, 1, 0}}, 1024, 0);
  ChunkStream stream(chunks, 1024, 2, [](const ReadChunk& c, unsigned char*) {
    if (c.begin >= 5 * 1024) throw std::runtime_error("disk gone");
  });
  for (int i = 0; i < 5; ++i) EXPECT_NE(stream.next(), nullptr);
  EXPECT_THROW(stream.next(), std::runtime_error);
}

TEST(ChunkStream, StoppingEarlyJoinsTheReader) {
  auto chunks = plan_read_chunks({{0, 0, 1 << 20, 1, 0}}, 4096, 0);
  ChunkStream stream(chunks, 4096, 2, [](const ReadChunk&, unsigned char* out) { out[0] = 1; });
  EXPECT_NE(stream.next(), nullptr);
  // The destructor must not wait for the remaining 255 chunks to be consumed.
}

TEST(ChunkStream, WhileEveryBufferIsHeldTheReaderHintsTheNextChunks) {
  auto chunks = plan_read_chunks({{0, 0, 20 * 1024, 1, 0}}, 1024, 0);
  ASSERT_EQ(chunks.size(), 20u);
  std::mutex mutex;
  std::vector<uint64_t> hinted;
  auto hinted_now = [&] {
    std::lock_guard<std::mutex> lock(mutex);
    return hinted;
  };
  ChunkStream stream(
      chunks, 1024, 2, [](const ReadChunk&, unsigned char*) {},
      [&](const ReadChunk& c) {
        std::lock_guard<std::mutex> lock(mutex);
        hinted.push_back(c.begin / 1024);
      },
      3);
  ASSERT_NE(stream.next(), nullptr);  // holds chunk 0; the reader reads 1 and waits to read 2
  for (int i = 0; i < 500 && hinted_now().size() < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(hinted_now(), (std::vector<uint64_t>{3, 4, 5}));  // never more than 3 ahead of chunk 2
  size_t seen = 1;
  while (stream.next()) ++seen;
  EXPECT_EQ(seen, chunks.size());
  const auto all = hinted_now();
  for (size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1], all[i]);  // each chunk at most once, in order
}
