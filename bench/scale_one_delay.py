"""Time and peak memory of one all-pairs TE (one delay) at N neurons x T bins, CPU:
``python bench/scale_one_delay.py N T`` (spike-like input, 5% ones; the cost does not depend on it)."""
import resource, sys, time
import torch, te_ext
N, T = int(sys.argv[1]), int(sys.argv[2])
g = torch.Generator().manual_seed(0)
x = torch.empty(T, N, dtype=torch.bool)
for t in range(0, T, 4096):
    x[t:t + 4096] = torch.rand(min(4096, T - t), N, generator=g) < 0.05
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open("/proc/stat") as f: s0 = f.readline().split()
t0 = time.perf_counter()
te = te_ext.transfer_entropy(x, x)
dt = time.perf_counter() - t0
with open("/proc/stat") as f: s1 = f.readline().split()
busy = lambda s: sum(int(v) for v in s[1:]) - int(s[4]) - int(s[5])
tot = lambda s: sum(int(v) for v in s[1:])
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"N={N} T={T} threads={torch.get_num_threads()} kernel={te_ext.build_info()['cpu_kernel']}: "
      f"{dt:.2f} s; peak RSS {rss1/2**20:.2f} GiB (before the op {rss0/2**20:.2f} GiB; input {x.numel()/2**30:.2f} GiB, "
      f"output {te.numel()*8/2**30:.2f} GiB); machine busy {100*(busy(s1)-busy(s0))/(tot(s1)-tot(s0)):.0f}% during the op")
