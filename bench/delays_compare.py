"""D1 side by side, interleaved (bench/alternate.py), one thread: the delay scan, the general scan
(TE_EXT_DELAYS_GENERAL=1), the loop of 30 transfer_entropy calls and one call, 256 x 256, T = 4096.
Usage: PYTHONPATH=.:bench python bench/delays_compare.py BUDGET_SECONDS"""
import os, subprocess, sys, torch, te_ext, alternate, workloads
torch.set_num_threads(1)
x = workloads.KernelInputs(workloads.KernelCase(256, 256, 4096))
D = list(range(1, 31))
def general():
    os.environ["TE_EXT_DELAYS_GENERAL"] = "1"
    try:
        return te_ext.transfer_entropy_delays(x.source, x.target, D)
    finally:
        del os.environ["TE_EXT_DELAYS_GENERAL"]
assert torch.equal(general(), te_ext.transfer_entropy_delays(x.source, x.target, D))
t = alternate.alternate({'scan': lambda: te_ext.transfer_entropy_delays(x.source, x.target, D),
  'general': general,
  'loop': lambda: [te_ext.transfer_entropy(x.source, x.target, delay=d) for d in D],
  'one': lambda: te_ext.transfer_entropy(x.source, x.target)}, budget_s=float(sys.argv[1]))
for a, b in (("scan", "one"), ("general", "one"), ("scan", "general"), ("scan", "loop")):
    print(a, "/", b, alternate.paired_ratio(t[a], t[b]))
print(len(t["one"]), {k: alternate.median(v) for k, v in t.items()})
