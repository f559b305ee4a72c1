#include "bptt/available_memory.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>

namespace bptt {
namespace {

// Reading the memory available takes about 40 µs; a call that needs more than this takes
// milliseconds to fill it, and a process with less than this available is out of memory anyway.
constexpr double kAlwaysGranted = double(std::size_t(16) << 20);

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

constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

// The first number of a file (a cgroup's memory.max holds "max" when unlimited); `none` when
// the file is missing or holds no number.
std::size_t number_in(const std::string& path, std::size_t none) {
  std::ifstream file(path);
  unsigned long long value = 0;
  return file >> value ? std::size_t(value) : none;
}

// The value of `key` in a cgroup's memory.stat ("inactive_file 1234" lines); 0 if absent.
std::size_t stat_value(const std::string& directory, const std::string& key) {
  std::ifstream file(directory + "/memory.stat");
  std::string name;
  unsigned long long value = 0;
  while (file >> name >> value)
    if (name == key) return std::size_t(value);
  return 0;
}

// What a memory cgroup's limit leaves: limit − usage, plus the file pages it can reclaim; the
// least over the cgroup and its ancestors (cgroup v2), or its hierarchical limit (v1). The
// cgroup is this process's, from /proc/self/cgroup, under the usual mount points.
std::size_t cgroup_available_bytes() {
  std::ifstream cgroups("/proc/self/cgroup");
  std::string line;
  std::size_t available = kUnlimited;
  while (std::getline(cgroups, line)) {
    const std::size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (controllers.empty()) {  // v2: each level down from the root may set memory.max
      for (;;) {
        const std::string directory = "/sys/fs/cgroup" + (path == "/" ? "" : path);
        const std::size_t limit = number_in(directory + "/memory.max", kUnlimited);
        if (limit != kUnlimited) {
          const std::size_t used = number_in(directory + "/memory.current", 0);
          const std::size_t free = limit > used ? limit - used : 0;
          available = std::min(available, free + stat_value(directory, "inactive_file"));
        }
        if (path.empty() || path == "/") break;
        path = path.substr(0, path.rfind('/'));
      }
    } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {  // v1
      const std::string directory = "/sys/fs/cgroup/memory" + (path == "/" ? "" : path);
      std::size_t limit = stat_value(directory, "hierarchical_memory_limit");
      if (limit == 0) limit = number_in(directory + "/memory.limit_in_bytes", kUnlimited);
      if (limit < physical_memory_bytes()) {  // an unlimited one reads as about 2^63
        const std::size_t used = number_in(directory + "/memory.usage_in_bytes", 0);
        const std::size_t free = limit > used ? limit - used : 0;
        available = std::min(available, free + stat_value(directory, "total_inactive_file"));
      }
    }
  }
  return available;
}

// What RLIMIT_AS leaves of the address space: the limit − this process's virtual size.
std::size_t address_space_available_bytes() {
  rlimit limit{};
  if (getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return kUnlimited;
  std::ifstream statm("/proc/self/statm");
  unsigned long long pages = 0;
  if (!(statm >> pages)) return kUnlimited;
  const std::size_t used = std::size_t(pages) * std::size_t(sysconf(_SC_PAGESIZE));
  return std::size_t(limit.rlim_cur) > used ? std::size_t(limit.rlim_cur) - used : 0;
}

}  // namespace

std::size_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return std::numeric_limits<std::size_t>::max();
  return std::size_t(pages) * std::size_t(page_size);
}

std::size_t available_memory_bytes() {
  const std::size_t machine = meminfo_available_bytes();
  return std::min({machine > 0 ? machine : physical_memory_bytes(), cgroup_available_bytes(),
                   address_space_available_bytes()});
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
