"""What a fuzz example is, and how to run it: plain-data case descriptions (picklable, so the
parent can send them to the guarded worker), tensors built from them, and the calls.

A tensor spec is a dict: ``shape``, ``dtype`` (a torch dtype name), ``device`` ("cpu" or
"meta"), ``fill`` ("bits", "float", "value"), ``seed``, optional ``value``/``at`` (one element set
to ``value``) and ``view``: None, "transposed", "sliced" (same values, other strides) or
"expanded" (``expand`` gives the giant shape, described by one row of memory).
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np
import torch

import te_ext


def host_values(spec: Dict[str, Any]) -> np.ndarray:
    """The spec's values as float64 numpy (before any dtype rounding)."""
    rng = np.random.default_rng(spec.get("seed", 0))
    shape = tuple(spec["shape"])
    if spec["fill"] == "float":
        a = rng.standard_normal(shape)
    else:
        a = rng.integers(0, 2, shape).astype(np.float64)
    if "at" in spec and a.size:
        a[tuple(s % max(n, 1) for s, n in zip(spec["at"], shape))] = spec["value"]
    return a


def build(spec: Dict[str, Any], device: str | None = None) -> torch.Tensor:
    """The tensor of a spec, on its device (or `device`), with its dtype and strides."""
    dtype = getattr(torch, spec["dtype"])
    dev = device or spec.get("device", "cpu")
    if spec.get("view") == "expanded":
        row = torch.zeros((1,) + tuple(spec["shape"][1:]), dtype=torch.float64)
        return row.to(dtype).to(dev).expand(*spec["expand"])
    base = torch.from_numpy(host_values(spec))
    if dtype.is_floating_point:
        t = base.to(dtype)
    elif dtype == torch.bool:
        t = base != 0
    else:
        t = base.to(torch.int64).to(dtype)
    view = spec.get("view")
    if view == "transposed" and t.dim() >= 2:
        t = t.transpose(-1, -2).contiguous().transpose(-1, -2)
    elif view == "sliced" and t.dim() >= 1:
        t = torch.stack([t, torch.zeros_like(t)], -1).flatten(-2)[..., ::2]
    return t.to(dev)


def binary(spec: Dict[str, Any], threshold) -> np.ndarray:
    """The 0/1 series the contract says the op sees (threshold compared in double)."""
    t = build(spec, "cpu")
    if threshold is None:
        return t.to(torch.int64).numpy().astype(np.uint8)
    return (t.to(torch.float64).numpy() > threshold).astype(np.uint8)


def _desc(out):
    if isinstance(out, torch.Tensor):
        if out.device.type == "meta":
            return {"meta": True, "shape": tuple(out.shape), "dtype": str(out.dtype)}
        return {"meta": False, "shape": tuple(out.shape), "dtype": str(out.dtype),
                "value": out.cpu().numpy()}
    return out


def run_op(case: Dict[str, Any]):
    """One call of an op through the te_ext functions (or torch.ops.te with ``raw``)."""
    op = case["op"]
    if op == "te_from_counts":
        counts = build(case["counts"])
        fn = torch.ops.te.te_from_counts if case.get("raw") else te_ext.te_from_counts
        return _desc(fn(counts, case["k"], case["l"]))
    source, target = build(case["source"]), build(case["target"])
    args = [source, target]
    if op == "transfer_entropy_pairs":
        args.append(build(case["pairs"]) if isinstance(case["pairs"], dict)
                    else torch.tensor(case["pairs"], dtype=torch.int64).reshape(-1, 2)
                    .to(case.get("pairs_device", case["source"].get("device", "cpu"))))
    if op.startswith("transfer_entropy_delays"):
        delays = [case["delay"], 1]
        if case.get("raw"):
            return _desc(getattr(torch.ops.te, op)(*args, delays, case["k"], case["l"],
                                                   case["threshold"]))
        out = te_ext.transfer_entropy_delays(*args, delays, k=case["k"], l=case["l"],
                                             threshold=case["threshold"],
                                             signed=op.endswith("_signed"))
        return _desc(torch.stack(out) if isinstance(out, tuple) else out)
    if case.get("raw"):
        return _desc(getattr(torch.ops.te, op)(*args, case["k"], case["l"], case["delay"],
                                               case["threshold"]))
    return _desc(getattr(te_ext, op)(*args, k=case["k"], l=case["l"], delay=case["delay"],
                                     threshold=case["threshold"]))


def run_window_op(case: Dict[str, Any]):
    """One raw call of te.window_append_ (or its generic twin) on fresh zero state."""
    I, J, W, bins = case["I"], case["J"], case["W"], case["bins"]
    dev = case.get("state_device", "cpu")
    counts = torch.zeros((I, J, bins) if case["track"] else (0,), dtype=torch.int64, device=dev)
    sr = torch.zeros(W, (I + 7) // 8, dtype=torch.uint8, device=dev)
    tr = torch.zeros(W, (J + 7) // 8, dtype=torch.uint8, device=dev)
    getattr(torch.ops.te, case["name"])(counts, sr, tr, build(case["source"]),
                                        build(case["target"]), case["seen"], case["k"], case["l"],
                                        case["delay"], case["source_threshold"],
                                        case["target_threshold"])
    return _desc(counts)


def run_window_class(case: Dict[str, Any]):
    """StreamingJointCounts(**kwargs), then the batches appended; the window's series and counts."""
    w = te_ext.StreamingJointCounts(*case["args"], **case["kwargs"])
    for spec_s, spec_t, ts, tt in case["batches"]:
        w.append(build(spec_s), build(spec_t), ts, tt)
    s, t = w.window_series()
    return {"counts": w.counts.numpy(), "source": s.numpy(), "target": t.numpy(),
            "k": w.k, "l": w.l, "delay": w.delay}


def run_feedback(case: Dict[str, Any]):
    """TEFeedback on a small MLP, then a few SGD steps; T and the weights afterwards."""
    torch.manual_seed(0)
    n_in, n_hidden, n_out = case["sizes"]
    model = torch.nn.Sequential(torch.nn.Linear(n_in, n_hidden), torch.nn.ReLU(),
                                torch.nn.Linear(n_hidden, n_out))
    fb = te_ext.TEFeedback(model[2], **case["kwargs"])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    for batch in case["batches"]:
        x = torch.randn(batch, n_in, generator=g)
        y = torch.randint(0, n_out, (batch,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return {"te": None if fb.te is None else fb.te.numpy(),
            "weight": model[2].weight.detach().numpy(), "steps": fb.steps}
