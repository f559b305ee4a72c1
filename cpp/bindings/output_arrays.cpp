#include "output_arrays.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>

namespace bptt::bindings {
namespace {

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
      if (kept_bytes_ + block.bytes <= kMaxKeptBytes) {
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

// Owns one block while an array lives on it.
class BlockOwner {
 public:
  explicit BlockOwner(std::size_t bytes) : block_(kept_outputs().take(bytes)) {}
  ~BlockOwner() { kept_outputs().give_back(block_); }
  BlockOwner(const BlockOwner&) = delete;
  BlockOwner& operator=(const BlockOwner&) = delete;

  void* data() const { return block_.data; }
  py::buffer_info buffer() const {
    return py::buffer_info(block_.data, 1, py::format_descriptor<std::uint8_t>::format(), 1,
                           {py::ssize_t(block_.bytes)}, {py::ssize_t(1)}, /*readonly=*/false);
  }

 private:
  Block block_;
};

}  // namespace

py::object output_storage(std::size_t bytes, void** data) {
  if (bytes >= kMinKeptBytes) {
    auto owner = std::make_unique<BlockOwner>(round_up(bytes));
    *data = owner->data();
    return py::cast(owner.release(), py::return_value_policy::take_ownership);
  }
  py::array_t<std::uint8_t> storage(py::ssize_t(bytes + kOutputAlignment));  // room to align
  const auto address = reinterpret_cast<std::uintptr_t>(storage.mutable_data());
  *data = reinterpret_cast<void*>(round_up(address));
  return std::move(storage);
}

void bind_output_blocks(py::module_& module) {
  py::class_<BlockOwner>(module, "_ResultMemory", py::buffer_protocol())
      .def_buffer(&BlockOwner::buffer);
}

std::size_t release_kept_outputs() { return kept_outputs().release(); }

}  // namespace bptt::bindings
