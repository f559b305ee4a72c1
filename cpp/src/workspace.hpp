// Scratch memory for one call of the core, kept by the calling thread for its next calls.
//
// A fresh buffer of megabytes comes from the kernel one zeroed page at a time, on first touch:
// at the medium benchmark size those page faults cost about a sixth of a whole call, every call.
// Blocks are therefore kept per thread after a call (at most kKeptBlocks of them, kMaxKeptBytes
// in all) and handed to the next call that fits; larger problems take long enough per byte that
// the faults do not matter, and their blocks are freed at once.
#pragma once

#include <cstddef>
#include <initializer_list>

namespace bptt {

class Workspace {
 public:
  static constexpr std::size_t kMaxKeptBytes = std::size_t(64) << 20;
  static constexpr std::size_t kKeptBlocks = 4;
  static constexpr std::size_t kAlignment = 64;

  // How a new block's memory is paged. `exact`: in pages of the base size only, never a huge
  // page: the memory a call touches is then the memory it takes from the machine, as a memory
  // budget counts it (a heap that NumPy advised for transparent huge pages would otherwise
  // serve a small block from a 2 MiB page). Not kept for later calls.
  enum class Pages { any, exact };

  explicit Workspace(std::size_t bytes, Pages pages = Pages::any);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // The next `count` scalars of the block, starting on a 64-byte boundary; uninitialized.
  template <class S>
  S* take(std::size_t count) {
    return static_cast<S*>(take_bytes(count * sizeof(S)));
  }

  // Bytes to ask for so that pieces of these byte sizes fit after alignment.
  static std::size_t bytes_for(std::initializer_list<std::size_t> pieces);

  // Frees the blocks the calling thread keeps; returns how many bytes that was.
  static std::size_t release_kept();

 private:
  void* take_bytes(std::size_t bytes);

  std::byte* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t used_ = 0;
  std::size_t mapped_bytes_ = 0;  // of a block mapped for Pages::exact, else 0
};

}  // namespace bptt
