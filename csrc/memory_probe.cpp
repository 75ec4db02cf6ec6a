// How much memory a request may use: the operating system's and the CUDA
// driver's answers (/proc/meminfo, cgroup v2, RLIMIT_AS, cudaMemGetInfo), and
// the one memory check that every op runs before it allocates.
#include "memory_probe.h"

#include <c10/util/Exception.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>

#ifdef TE_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace te {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// A "Key: value kB" line of a /proc file, in bytes, or INT64_MAX.
int64_t proc_kb_field(const char* path, const std::string& key) {
  std::ifstream f(path);
  std::string name;
  int64_t kb = 0;
  while (f >> name) {
    if (name == key + ":" && (f >> kb)) return kb > kInt64Max / 1024 ? kInt64Max : kb * 1024;
    f.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return kInt64Max;
}

// One integer from a cgroup file ("max" and unreadable files: INT64_MAX).
int64_t cgroup_value(const char* path) {
  std::ifstream f(path);
  int64_t v = 0;
  if (f >> v) return v;
  return kInt64Max;
}

int64_t host_available_bytes() {
  int64_t avail = proc_kb_field("/proc/meminfo", "MemAvailable");
  // A container's limit: cgroup v2 memory.max less what the group uses.
  const int64_t cg_max = cgroup_value("/sys/fs/cgroup/memory.max");
  const int64_t cg_cur = cgroup_value("/sys/fs/cgroup/memory.current");
  if (cg_max != kInt64Max && cg_cur != kInt64Max) avail = std::min(avail, std::max<int64_t>(0, cg_max - cg_cur));
  // An address-space cap (ulimit -v, RLIMIT_AS) less what the process maps.
  struct rlimit lim {};
  if (getrlimit(RLIMIT_AS, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    const int64_t vm = proc_kb_field("/proc/self/status", "VmSize");
    const int64_t cap = static_cast<int64_t>(std::min<rlim_t>(lim.rlim_cur, kInt64Max));
    if (vm != kInt64Max) avail = std::min(avail, std::max<int64_t>(0, cap - vm));
  }
  return avail;
}

#ifdef TE_WITH_CUDA
int64_t cuda_free_bytes(const at::Device& device) {
  const c10::cuda::CUDAGuard guard(device);
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    (void)cudaGetLastError();  // clear it: the op itself will report real faults
    return kInt64Max;
  }
  return static_cast<int64_t>(free_b);
}
#endif

int64_t available_bytes(const at::Device& device) {
  if (device.is_cpu()) return host_available_bytes();
#ifdef TE_WITH_CUDA
  if (device.is_cuda()) return cuda_free_bytes(device);
#endif
  return kInt64Max;
}

int64_t usable(int64_t available) { return available == kInt64Max ? available : available - available / 8; }

}  // namespace

std::string bytes_str(int64_t bytes) {
  if (bytes == kInt64Max) return "more than 2^63 bytes";
  return c10::str(bytes, " bytes (", static_cast<double>(bytes) / double(int64_t(1) << 30),
                  " GiB)");
}

int64_t usable_memory_bytes(const at::Device& device) { return usable(available_bytes(device)); }

void check_memory(int64_t bytes, const at::Device& device, const std::string& what,
                  const char* op) {
  if (bytes <= kMemoryQueryBytes) return;
  int64_t limit = usable_memory_bytes(device);
#ifdef TE_WITH_CUDA
  if (bytes > limit && device.is_cuda()) {
    // PyTorch's allocator keeps freed blocks cached; it returns them to the
    // driver before it reports out-of-memory, and so do we before refusing.
    c10::cuda::CUDACachingAllocator::emptyCache();
    limit = usable_memory_bytes(device);
  }
#endif
  TORCH_CHECK_VALUE(bytes <= limit, op, ": ", what, " needs ", bytes_str(bytes),
                    " of memory, more than the ", bytes_str(limit), " available on ", device,
                    " (7/8 of the free memory; the rest is left as a margin)");
}

int64_t host_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return kInt64Max;
  return pages > kInt64Max / page ? kInt64Max : int64_t(pages) * page;
}

}  // namespace te
