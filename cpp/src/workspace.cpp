#include "workspace.hpp"

#include "bptt/scratch.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <new>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace bptt {
namespace {

struct Block {
  std::byte* data = nullptr;
  std::size_t bytes = 0;
};

std::size_t round_up(std::size_t bytes) {
  return (bytes + Workspace::kAlignment - 1) / Workspace::kAlignment * Workspace::kAlignment;
}

// The blocks this thread keeps between calls; freed when the thread ends.
struct KeptBlocks {
  std::array<Block, Workspace::kKeptBlocks> blocks;
  ~KeptBlocks() { release(); }

  std::size_t release() {
    std::size_t bytes = 0;
    for (Block& block : blocks) {
      std::free(block.data);
      bytes += block.bytes;
      block = Block{};
    }
    return bytes;
  }

  // The smallest kept block of at least `bytes`, removed from the list; empty if none.
  Block take(std::size_t bytes) {
    Block* best = nullptr;
    for (Block& block : blocks)
      if (block.data && block.bytes >= bytes && (!best || block.bytes < best->bytes)) best = &block;
    if (!best) return {};
    return std::exchange(*best, Block{});
  }

  // Keeps the largest of the kept blocks and `block` that fit in kKeptBlocks places and
  // kMaxKeptBytes in all; frees the others.
  void give_back(Block block) {
    std::array<Block, Workspace::kKeptBlocks + 1> candidates;
    std::copy(blocks.begin(), blocks.end(), candidates.begin());
    candidates.back() = block;
    std::sort(candidates.begin(), candidates.end(),
              [](const Block& a, const Block& b) { return a.bytes > b.bytes; });
    blocks = {};
    std::size_t kept = 0, total = 0;
    for (Block& candidate : candidates) {
      if (!candidate.data) continue;
      if (kept < blocks.size() && total + candidate.bytes <= Workspace::kMaxKeptBytes) {
        blocks[kept++] = candidate;
        total += candidate.bytes;
      } else {
        std::free(candidate.data);
      }
    }
  }
};

thread_local KeptBlocks kept_blocks;

#if defined(__linux__)
// A block of its own pages, which no huge page backs; null where the mapping fails.
std::byte* map_exact_pages(std::size_t bytes) {
  void* block = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (block == MAP_FAILED) return nullptr;
  madvise(block, bytes, MADV_NOHUGEPAGE);  // where huge pages are the system's default
  return static_cast<std::byte*>(block);
}
#endif

}  // namespace

Workspace::Workspace(std::size_t bytes, Pages pages) : capacity_(round_up(bytes)) {
  if (capacity_ == 0) return;
#if defined(__linux__)
  if (pages == Pages::exact) {
    data_ = map_exact_pages(capacity_);
    if (!data_) throw std::bad_alloc();
    mapped_bytes_ = capacity_;
    return;
  }
#else
  (void)pages;
#endif
  if (capacity_ <= kMaxKeptBytes) {
    const Block kept = kept_blocks.take(capacity_);
    if (kept.data) {
      data_ = kept.data;
      capacity_ = kept.bytes;
      return;
    }
  }
  data_ = static_cast<std::byte*>(std::aligned_alloc(kAlignment, capacity_));
  if (!data_) throw std::bad_alloc();
}

Workspace::~Workspace() {
  if (!data_) return;
#if defined(__linux__)
  if (mapped_bytes_) {
    munmap(data_, mapped_bytes_);
    return;
  }
#endif
  if (capacity_ <= kMaxKeptBytes) kept_blocks.give_back({data_, capacity_});
  else std::free(data_);
}

std::size_t Workspace::release_kept() { return kept_blocks.release(); }

std::size_t Workspace::bytes_for(std::initializer_list<std::size_t> pieces) {
  std::size_t total = 0;
  for (std::size_t piece : pieces) total += round_up(piece);
  return total;
}

void* Workspace::take_bytes(std::size_t bytes) {
  void* piece = data_ + used_;
  used_ += round_up(bytes);
  if (used_ > capacity_) throw std::bad_alloc();  // a caller asked for less than it takes
  return piece;
}

std::size_t release_scratch() { return Workspace::release_kept(); }

}  // namespace bptt
