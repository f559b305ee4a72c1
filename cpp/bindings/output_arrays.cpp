#include "output_arrays.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>

namespace bptt::bindings {
namespace {

// Smaller blocks come from the allocator's own free lists, which keep them paged in.
constexpr std::size_t kMinKeptBytes = std::size_t(64) << 10;
constexpr std::size_t kMaxKeptBytes = std::size_t(64) << 20;

struct Block {
  void* data;
  std::size_t bytes;
};

std::size_t round_up(std::size_t bytes) {
  return (bytes + kOutputAlignment - 1) / kOutputAlignment * kOutputAlignment;
}

// Shared by every thread: NumPy may free an array on a thread other than the one that made it.
class KeptOutputs {
 public:
  // A kept block of `bytes` to 2·`bytes`, or a new one of `bytes`.
  Block take(std::size_t bytes) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      std::size_t best = blocks_.size();
      for (std::size_t i = 0; i < blocks_.size(); ++i) {
        const std::size_t size = blocks_[i].bytes;
        const bool fits = size >= bytes && size <= 2 * bytes;
        if (fits && (best == blocks_.size() || size < blocks_[best].bytes)) best = i;
      }
      if (best < blocks_.size()) {
        const Block block = blocks_[best];
        blocks_.erase(blocks_.begin() + std::ptrdiff_t(best));
        kept_bytes_ -= block.bytes;
        return block;
      }
    }
    void* data = std::aligned_alloc(kOutputAlignment, bytes);
    if (!data) throw std::bad_alloc();
    return {data, bytes};
  }

  void give_back(Block block) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (block.bytes >= kMinKeptBytes && kept_bytes_ + block.bytes <= kMaxKeptBytes) {
        blocks_.push_back(block);
        kept_bytes_ += block.bytes;
        return;
      }
    }
    std::free(block.data);
  }

  std::size_t release() {
    std::vector<Block> freed;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      freed.swap(blocks_);
      kept_bytes_ = 0;
    }
    std::size_t bytes = 0;
    for (const Block& block : freed) {
      std::free(block.data);
      bytes += block.bytes;
    }
    return bytes;
  }

 private:
  std::mutex mutex_;
  std::vector<Block> blocks_;
  std::size_t kept_bytes_ = 0;
};

// Never destroyed: an array may outlive the module's static objects at interpreter exit.
KeptOutputs& kept_outputs() {
  static KeptOutputs* outputs = new KeptOutputs;
  return *outputs;
}

}  // namespace

py::capsule kept_output_block(std::size_t bytes, void** data) {
  const std::size_t rounded = round_up(std::max<std::size_t>(bytes, 1));
  auto block = std::make_unique<Block>(kept_outputs().take(rounded));
  *data = block->data;
  py::capsule owner(block.get(), [](void* pointer) {
    const std::unique_ptr<Block> owned(static_cast<Block*>(pointer));
    kept_outputs().give_back(*owned);
  });
  block.release();  // the capsule owns it now
  return owner;
}

std::size_t release_kept_outputs() { return kept_outputs().release(); }

}  // namespace bptt::bindings
