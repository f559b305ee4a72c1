// Refuses allocations larger than the machine's physical memory up front: with overcommit, such
// an allocation can succeed and only fail, as a killed process, when the pages are touched.
#pragma once

#include <cstddef>
#include <new>
#include <string>

namespace bptt {

class AllocationTooLarge : public std::bad_alloc {
 public:
  explicit AllocationTooLarge(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

std::size_t physical_memory_bytes();

// Throws AllocationTooLarge, naming `what`, when `bytes` exceeds physical memory.
void check_allocation(double bytes, const char* what);

}  // namespace bptt
