"""Fuzz te_ext.distributed with 2 gloo ranks that disagree: seeded random calls where rank 1
changes one argument (a valid value that differs, or an invalid one), and calls where both
ranks agree.

Every call must, on both ranks, either return the single-process result bit for bit (ranks
agree) or raise a ValueError/TypeError; a rank that raised alone would leave the other blocked
in a collective, so the group's timeout is short (20 s) and any timeout, hang or crash fails.
When only a valid value differs, both ranks must name it ("every rank must pass the same ...").
"""

from __future__ import annotations

import datetime
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import te_ext

CASES = 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _series(seed, T=120, I=5, J=4, R=None):
    g = torch.Generator().manual_seed(seed)
    lead = (R,) if R else ()
    return torch.rand(*lead, T, I, generator=g) < 0.4, torch.rand(*lead, T, J, generator=g) < 0.4


def _cases():
    """The same list on every rank: (function, base kwargs, argument to change, rank 1's value,
    whether that value is valid)."""
    rng = np.random.default_rng(0)
    out = []
    for q in range(CASES):
        fn = ["pairs", "time", "delays", "signed"][q % 4]
        base = dict(k=int(rng.integers(1, 3)), l=int(rng.integers(1, 3)))
        if fn in ("pairs", "time"):
            base["delay"] = int(rng.integers(1, 4))
        else:
            base["delays"] = [int(d) for d in rng.integers(1, 6, size=3)]
        choices = {
            "k": [base["k"] + 1, 0, True, 2**62],
            "l": [base["l"] + 1, -1],
            "delay": [base.get("delay", 1) + 1, 0, 10**9],
            "delays": [[1, 2], [], [0], [10**9]],
            "threshold": [0.3],
            "gather": [False],
            "rows": [100],
            "source neurons": [3],
            "source dtype": ["int8"],
            "replicates": [2],
            None: [None],
        }
        names = [n for n in choices if n is None or
                 not ((n == "delay" and "delays" in base) or (n == "delays" and "delay" in base))]
        name = names[int(rng.integers(0, len(names)))]
        value = choices[name][int(rng.integers(0, len(choices[name])))]
        valid = name is None or not (
            value in (0, -1, True, 2**62, 10**9) or value in ([], [0], [10**9]))
        out.append((fn, base, name, value, valid, int(rng.integers(0, 1000))))
    return out


def _call(fn, kwargs, x, y):
    d = te_ext.distributed
    if fn == "pairs":
        return d.transfer_entropy(x, y, **kwargs)
    if fn == "time":
        return d.transfer_entropy(x, y, shard="time", **kwargs)
    return d.transfer_entropy_delays(x, y, signed=fn == "signed", **kwargs)


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=20))
    results = []
    try:
        for fn, base, name, value, valid, seed in _cases():
            kwargs = dict(base)
            x, y = _series(seed)
            if rank == 1 and name is not None:
                if name == "rows":
                    x, y = x[:value], y[:value]
                elif name == "source neurons":
                    x = x[:, :value]
                elif name == "source dtype":
                    x = x.to(getattr(torch, value))
                elif name == "replicates":
                    x, y = _series(seed, T=60, R=value)
                elif name == "threshold":
                    x, y = x.float(), y.float()
                    kwargs["threshold"] = value
                else:
                    kwargs[name] = value
            if name == "threshold" and rank == 0:
                x, y = x.float(), y.float()
                kwargs["threshold"] = 0.5
            try:
                out = _call(fn, kwargs, x, y)
                if isinstance(out, tuple) and isinstance(out[1], tuple):  # gather=False
                    out = ("block",)
                results.append(("ok", out))
            except (ValueError, TypeError) as exc:
                results.append(("raise", type(exc).__name__, str(exc)))
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_disagreeing_ranks_raise_together_or_agree_exactly(tmp_path):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    ctx = mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2,
                             join=False, start_method="spawn")
    while not ctx.join(timeout=600):
        pass
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    for q, (fn, base, name, value, valid, seed) in enumerate(_cases()):
        a, b = ranks[0][q], ranks[1][q]
        if name is None:  # agreeing ranks: the single-process op's result
            x, y = _series(seed)
            want = (te_ext.transfer_entropy(x, y, **base) if fn in ("pairs", "time") else
                    te_ext.transfer_entropy_delays(x, y, signed=fn == "signed", **base))
            for r in (a, b):
                assert r[0] == "ok", (q, fn, base, r)
                got = r[1]
                if isinstance(want, tuple):
                    assert all(torch.equal(g, w) for g, w in zip(got, want)), (q, fn)
                elif got != ("block",):
                    assert torch.equal(got, want), (q, fn)
            continue
        assert a[0] == "raise" and b[0] == "raise", (q, fn, base, name, value, a[:3], b[:3])
        if valid:
            for r in (a, b):
                assert f"every rank must pass the same {name}" in r[2], (q, name, r[2])
