#include "bptt/available_memory.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <limits>

namespace bptt {
namespace {

constexpr double kAlwaysGranted = double(std::size_t(256) << 20);

// MemAvailable plus SwapFree from /proc/meminfo, in bytes; 0 when unreadable.
std::size_t meminfo_available_bytes() {
  std::FILE* file = std::fopen("/proc/meminfo", "r");
  if (!file) return 0;
  char line[256];
  unsigned long long kib = 0, total = 0;
  bool found = false;
  while (std::fgets(line, sizeof line, file)) {
    if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
      total += kib;
      found = true;
    } else if (std::sscanf(line, "SwapFree: %llu kB", &kib) == 1) {
      total += kib;
    }
  }
  std::fclose(file);
  return found ? std::size_t(total) * 1024 : 0;
}

}  // namespace

std::size_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return std::numeric_limits<std::size_t>::max();
  return std::size_t(pages) * std::size_t(page_size);
}

std::size_t available_memory_bytes() {
  const std::size_t available = meminfo_available_bytes();
  return available > 0 ? available : physical_memory_bytes();
}

bool fits_in_available_memory(double bytes) {
  return bytes <= kAlwaysGranted || bytes <= double(available_memory_bytes());
}

void check_allocation(double bytes, const char* what) {
  if (fits_in_available_memory(bytes)) return;
  const double available = double(available_memory_bytes());
  char message[256];
  std::snprintf(message, sizeof message,
                "%s needs %.3g GB, more than the %.3g GB of memory this machine has available",
                what, bytes / 1e9, available / 1e9);
  throw AllocationTooLarge(message);
}

}  // namespace bptt
