// Refuses allocations larger than the memory the machine has available (free or reclaimable RAM
// and free swap) up front: with overcommit, such an allocation can succeed and only fail, as a
// killed process or a machine brought to a halt, when the pages are touched.
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
// Free or reclaimable RAM and free swap (physical memory where the kernel does not say), at most
// what this process's memory cgroup and its address-space limit (RLIMIT_AS) leave it.
std::size_t available_memory_bytes();

// Whether `bytes` fit in the available memory; requests below 16 MiB always do, so that a
// small call does not read /proc.
bool fits_in_available_memory(double bytes);

// Throws AllocationTooLarge, naming `what`, when `bytes` exceeds the available memory.
void check_allocation(double bytes, const char* what);

}  // namespace bptt
