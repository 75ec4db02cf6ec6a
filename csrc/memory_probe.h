// The memory check of every op: how much a request may use on a device, asked
// of the operating system or the CUDA driver (memory_probe.cpp).
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace te {

// Requests up to this many bytes pass the memory checks without asking the OS
// or the CUDA driver, so the small calls of a training step cost nothing.
constexpr int64_t kMemoryQueryBytes = int64_t(64) << 20;

// Bytes a request on `device` may use now: 7/8 of what is available (the rest
// is the margin left to the process and its neighbours). On the CPU,
// "available" is the least of /proc/meminfo's MemAvailable, the cgroup's
// memory.max - memory.current and RLIMIT_AS less this process's address
// space; on CUDA, cudaMemGetInfo's free memory (after returning PyTorch's
// cached blocks to the driver, the way PyTorch's allocator does before it
// reports out-of-memory). INT64_MAX where nothing can be read.
int64_t usable_memory_bytes(const at::Device& device);

// Raises ValueError, before anything is allocated, if `bytes` (saturated at
// INT64_MAX) exceed usable_memory_bytes(device); `what` says which arguments
// asked for them. Queries nothing for requests up to kMemoryQueryBytes.
void check_memory(int64_t bytes, const at::Device& device, const std::string& what,
                  const char* op);

// Physical memory of this machine (an upper bound, cheap to ask).
int64_t host_memory_bytes();

// A byte count for an error message: exact, and in GiB for a reader.
std::string bytes_str(int64_t bytes);

}  // namespace te
