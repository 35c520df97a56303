#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "dreambooth/core/cpu_allocator.h"

using namespace dreambooth;

namespace {

constexpr size_t kMiB = size_t{1} << 20;

}  // namespace

TEST(CachingCpuAllocator, ReusesAFreedBlockOfTheSameSize) {
  CachingCpuAllocator allocator;
  void* first_address = nullptr;
  {
    c10::DataPtr first = allocator.allocate(8 * kMiB);
    first_address = first.get();
    std::memset(first.get(), 1, 8 * kMiB);
  }
  EXPECT_EQ(allocator.stats().bytes_cached, static_cast<int64_t>(8 * kMiB));
  c10::DataPtr second = allocator.allocate(8 * kMiB - 100);  // rounds to the same block
  EXPECT_EQ(second.get(), first_address);
  EXPECT_EQ(allocator.stats().blocks_mapped, 1);
  EXPECT_EQ(allocator.stats().blocks_reused, 1);
  EXPECT_EQ(allocator.stats().bytes_cached, 0);
  EXPECT_EQ(allocator.stats().bytes_in_use, static_cast<int64_t>(8 * kMiB));
}

TEST(CachingCpuAllocator, LargeBlocksStartOnHugePageBoundaries) {
  CachingCpuAllocator allocator;
  c10::DataPtr block = allocator.allocate(5 * kMiB);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(block.get()) % (2 * kMiB), 0u);
  EXPECT_EQ(block.device(), c10::Device(c10::kCPU));
}

TEST(CachingCpuAllocator, DoesNotHandAMuchLargerBlockToASmallRequest) {
  CachingCpuAllocator allocator;
  { c10::DataPtr big = allocator.allocate(64 * kMiB); }
  c10::DataPtr small = allocator.allocate(8 * kMiB);
  EXPECT_EQ(allocator.stats().blocks_reused, 0);
  EXPECT_EQ(allocator.stats().blocks_mapped, 2);
}

TEST(CachingCpuAllocator, HoldsNoMoreThanThePeakInUse) {
  CachingCpuAllocator allocator;
  {
    c10::DataPtr a = allocator.allocate(8 * kMiB);
    c10::DataPtr b = allocator.allocate(8 * kMiB);
  }  // peak 16 MiB in use, now all cached
  EXPECT_EQ(allocator.stats().bytes_cached, static_cast<int64_t>(16 * kMiB));
  {
    // A new size: the oldest free block gives way, so 16 MiB stay held in all.
    c10::DataPtr c = allocator.allocate(6 * kMiB);
    EXPECT_EQ(allocator.stats().bytes_cached, static_cast<int64_t>(8 * kMiB));
    EXPECT_EQ(allocator.stats().bytes_in_use + allocator.stats().bytes_cached, static_cast<int64_t>(14 * kMiB));
    c10::DataPtr d = allocator.allocate(8 * kMiB);  // the remaining 8 MiB block
    EXPECT_EQ(allocator.stats().blocks_reused, 1);
  }
  EXPECT_EQ(allocator.stats().peak_bytes_in_use, static_cast<int64_t>(16 * kMiB));
  allocator.release_cached();
  EXPECT_EQ(allocator.stats().bytes_cached, 0);
  EXPECT_EQ(allocator.stats().peak_bytes_in_use, 0);
}

TEST(CachingCpuAllocator, SmallRequestsGoToTheDefaultAllocator) {
  CachingCpuAllocator allocator;
  c10::DataPtr small = allocator.allocate(1000);
  ASSERT_NE(small.get(), nullptr);
  EXPECT_EQ(allocator.stats().bytes_in_use, 0);
  // The raw interface frees either kind.
  void* raw_small = allocator.raw_allocate(4096);
  void* raw_large = allocator.raw_allocate(4 * kMiB);
  allocator.raw_deallocate(raw_small);
  allocator.raw_deallocate(raw_large);
  EXPECT_EQ(allocator.stats().bytes_cached, static_cast<int64_t>(4 * kMiB));
}

TEST(CachingCpuAllocator, KeepsTheCacheUnderItsLimit) {
  CpuAllocatorOptions options;
  options.cache_limit_bytes = 10 * kMiB;
  CachingCpuAllocator allocator(options);
  {
    std::vector<c10::DataPtr> blocks;
    for (int i = 0; i < 4; ++i) blocks.push_back(allocator.allocate(4 * kMiB));
  }
  EXPECT_LE(allocator.stats().bytes_cached, static_cast<int64_t>(10 * kMiB));
  EXPECT_EQ(allocator.stats().bytes_cached, static_cast<int64_t>(8 * kMiB));
  allocator.release_cached();
  EXPECT_EQ(allocator.stats().bytes_cached, 0);
}

TEST(CachingCpuAllocator, BlocksMayOutliveTheAllocator) {
  c10::DataPtr survivor;
  {
    CachingCpuAllocator allocator;
    survivor = allocator.allocate(3 * kMiB);
    std::memset(survivor.get(), 7, 3 * kMiB);
  }
  EXPECT_EQ(static_cast<unsigned char*>(survivor.get())[3 * kMiB - 1], 7);
  survivor.clear();  // unmapped, not cached by a dead allocator
}

TEST(CachingCpuAllocator, ThreadsAllocateAndFreeConcurrently) {
  CachingCpuAllocator allocator;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&allocator, t] {
      for (int i = 0; i < 200; ++i) {
        const size_t bytes = (1 + (i + t) % 5) * kMiB;
        c10::DataPtr block = allocator.allocate(bytes);
        static_cast<unsigned char*>(block.get())[bytes - 1] = static_cast<unsigned char>(i);
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(allocator.stats().bytes_in_use, 0);
  EXPECT_GT(allocator.stats().blocks_reused, 0);
}

TEST(CachingCpuAllocator, InstalledItServesLibTorchsTensors) {
  // A process-wide change: the rest of this binary's tests also run with it, a wider check that it is a
  // drop-in replacement.
  if (!install_caching_cpu_allocator()) GTEST_SKIP() << "DREAMBOOTH_CPU_CACHE=0";
  const CpuAllocatorStats before = cpu_allocator_stats();
  at::Tensor a = torch::arange(1 << 20, torch::kFloat);  // 4 MiB
  at::Tensor b = a * 2 + 1;
  EXPECT_EQ(b[12345].item<float>(), 2 * 12345 + 1);
  EXPECT_GT(cpu_allocator_stats().bytes_in_use, before.bytes_in_use);
  a = at::Tensor();
  b = at::Tensor();
  at::Tensor c = torch::ones({1 << 20});
  EXPECT_GT(cpu_allocator_stats().blocks_reused, before.blocks_reused);
  EXPECT_EQ(c.sum().item<float>(), float(1 << 20));
  c = at::Tensor();
  release_cached_cpu_memory();
  EXPECT_EQ(cpu_allocator_stats().bytes_cached, 0);
}
