#include "bptt/memory_budget.hpp"

#include <unistd.h>

#include <cstdio>
#include <limits>

namespace bptt {

std::size_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return std::numeric_limits<std::size_t>::max();
  return std::size_t(pages) * std::size_t(page_size);
}

void check_allocation(double bytes, const char* what) {
  static const double available = double(physical_memory_bytes());
  if (bytes <= available) return;
  char message[256];
  std::snprintf(message, sizeof message, "%s needs %.3g GB, more than this machine's %.3g GB of memory",
                what, bytes / 1e9, available / 1e9);
  throw AllocationTooLarge(message);
}

}  // namespace bptt
