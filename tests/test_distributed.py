"""te_ext.distributed with 2 and 3 gloo processes: blocks of pairs (uneven) and time shards,
each bit-identical to the single-process op."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import te_ext
from te_ext.distributed import pair_block, split_range, time_rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    """Series every rank and the parent build alike: 11 sources, 7 targets, replicates."""
    g = torch.Generator().manual_seed(42)
    x = torch.rand(2, 157, 11, generator=g) < 0.4
    y = torch.roll(x[..., :7], 2, dims=1) ^ (torch.rand(2, 157, 7, generator=g) < 0.2)
    return x, y


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        x, y = _data()
        d = te_ext.distributed
        res = {
            "rows": d.transfer_entropy(x, y, k=2, delay=2),            # I >= J: rows split
            "cols": d.transfer_entropy(y, x, l=2),                      # I < J: columns split
            "block": d.transfer_entropy(x, y, k=2, delay=2, gather=False),
            "time": d.transfer_entropy(x, y, k=2, delay=2, shard="time"),
            "time_thr": d.transfer_entropy(x.float(), y.double(), l=2, delay=3, shard="time",
                                           threshold=0.5),
            "delays": d.transfer_entropy_delays(x, y, [1, 3, 2], k=2),
            "signed": d.transfer_entropy_delays(x, y, [1, 3, 2], k=2, signed=True),
            "signed_block": d.transfer_entropy_delays(x, y, [2], signed=True, gather=False),
        }
        # Only this rank's rows of the series, as a rank that cannot hold them would load them.
        t0, t1 = time_rows(157, k=2, delay=2, rank=rank, world=world)
        res["time_local"] = d.transfer_entropy(x[:, t0:t1], y[:, t0:t1], k=2, delay=2,
                                               shard="time", total_length=157)
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_bit_identical_to_single_process(tmp_path, world):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    mp.spawn(_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    x, y = _data()
    want = te_ext.transfer_entropy(x, y, k=2, delay=2)
    want_cols = te_ext.transfer_entropy(y, x, l=2)
    want_thr = te_ext.transfer_entropy(x.float(), y.double(), l=2, delay=3, threshold=0.5)
    want_delays = te_ext.transfer_entropy_delays(x, y, [1, 3, 2], k=2)
    want_signed = te_ext.transfer_entropy_delays(x, y, [1, 3, 2], k=2, signed=True)
    want_signed_2 = te_ext.transfer_entropy_delays(x, y, [2], signed=True)
    covered = torch.zeros_like(want, dtype=torch.int64)
    for r, res in enumerate(ranks):
        assert torch.equal(res["rows"], want)
        assert torch.equal(res["cols"], want_cols)
        assert torch.equal(res["time"], want)
        assert torch.equal(res["time_local"], want)
        assert torch.equal(res["time_thr"], want_thr)
        assert torch.equal(res["delays"], want_delays)
        assert all(torch.equal(a, b) for a, b in zip(res["signed"], want_signed))
        (te_block, sign_block), (i0, i1, j0, j1) = res["signed_block"]
        assert torch.equal(te_block, want_signed_2[0][:, i0:i1, j0:j1])
        assert torch.equal(sign_block, want_signed_2[1][:, i0:i1, j0:j1])
        block, (i0, i1, j0, j1) = res["block"]
        assert (i0, i1, j0, j1) == pair_block(11, 7, r, world)
        assert torch.equal(block, want[i0:i1, j0:j1])
        covered[i0:i1, j0:j1] += 1
    assert torch.equal(covered, torch.ones_like(covered))  # the blocks tile the matrix once
    sizes = {res["block"][0].shape[0] for res in ranks}
    assert len(sizes) == 2  # 11 rows over 2 or 3 ranks: uneven blocks were exercised


def test_split_helpers():
    assert [split_range(10, 3, r) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]
    assert [split_range(2, 3, r) for r in range(3)] == [(0, 1), (1, 2), (2, 2)]
    assert pair_block(5, 9, 1, 2) == (0, 5, 5, 9)
    # time shards: observations n0..T-1 split, each with n0 rows of history before it
    T, n0 = 20, 3
    rows = [time_rows(T, k=3, rank=r, world=4) for r in range(4)]
    obs = [range(t0 + n0, t1) for t0, t1 in rows]
    assert sorted(n for o in obs for n in o) == list(range(n0, T))
    assert time_rows(5, k=3, rank=2, world=3) == (5, 5)  # no observations left for rank 2


def test_needs_an_initialised_group():
    x = torch.zeros(20, 2, dtype=torch.bool)
    if dist.is_available() and dist.is_initialized():
        pytest.skip("a process group is already initialised here")
    with pytest.raises(RuntimeError, match="not initialised"):
        te_ext.distributed.transfer_entropy(x, x)


def test_bad_shard_option():
    x = torch.zeros(20, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="shard must be 'pairs' or 'time'"):
        te_ext.distributed.transfer_entropy(x, x, shard="rows")
    with pytest.raises(ValueError, match="total_length applies to shard='time' only"):
        te_ext.distributed.transfer_entropy(x, x, total_length=20)


def _outcomes(cases, errors) -> dict:
    """name -> "no error", or "ExceptionType: message" for the ``errors`` a call raised."""
    out = {}
    for name, call in cases.items():
        try:
            call()
            out[name] = "no error"
        except errors as exc:
            out[name] = f"{type(exc).__name__}: {exc}"
    return out


def _spawn_two(worker, tmp_path) -> None:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    mp.start_processes(worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")


def _disagreeing_worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    x, y = _data()
    d = te_ext.distributed
    cases = {  # each differs on rank 1 only; rank 0's value first
        "k": lambda: d.transfer_entropy(x, y, k=1 + rank, shard="time"),
        "shard": lambda: d.transfer_entropy(x, y, shard=("pairs", "time")[rank]),
        "delay": lambda: d.transfer_entropy(x, y, delay=1 + rank),
        "delays": lambda: d.transfer_entropy_delays(x, y, [1, 2 + rank]),
        "threshold": lambda: d.transfer_entropy(x.float(), y.float(), threshold=0.2 + rank / 10),
    }
    try:
        torch.save(_outcomes(cases, ValueError), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ranks_that_disagree_raise_on_every_rank_naming_the_argument(tmp_path):
    # Without the agreement, gloo aborted rank 0 (k, delays), both ranks hung for 30 minutes
    # (shard) or every rank computed a silently wrong matrix (delay).
    _spawn_two(_disagreeing_worker, tmp_path)
    for rank in (0, 1):
        out = torch.load(tmp_path / f"rank{rank}.pt")
        for name, message in out.items():
            assert f"every rank must pass the same {name}" in message, (rank, name, message)


def _data_error_worker(rank, world, port, out_dir):
    import datetime
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # A short timeout: a rank left waiting fails the test in seconds, not in 30 minutes.
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=20))
    x, y = _data()
    bad = x.to(torch.int64)
    bad[0, 5, 10] = 2  # source column 10: in rank 1's block of rows only (11 sources, 2 ranks)
    t0, t1 = time_rows(157, rank=rank, world=world)
    mine = x[:, t0:t1].to(torch.int64)
    if rank == 1:
        mine[1, 3, 0] = 2  # under total_length, only rank 1's own rows hold the bad value
    d = te_ext.distributed
    cases = {
        "pairs": lambda: d.transfer_entropy(bad, y),
        "delays": lambda: d.transfer_entropy_delays(bad, y, [1, 2]),
        "signed": lambda: d.transfer_entropy_delays(bad, y, [1], signed=True),
        "time_local": lambda: d.transfer_entropy(mine if rank == 1 else x[:, t0:t1].long(),
                                                 y[:, t0:t1], shard="time", total_length=157),
    }
    try:
        out = _outcomes(cases, (ValueError, RuntimeError))
        out["after"] = d.transfer_entropy(x, y)  # the group still works
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_an_error_in_one_ranks_data_raises_on_every_rank(tmp_path):
    # A non-binary value in the columns (or rows) only rank 1 holds used to raise on rank 1
    # alone and leave rank 0 blocked in the collective that pools the blocks.
    _spawn_two(_data_error_worker, tmp_path)
    x, y = _data()
    for rank in (0, 1):
        out = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.equal(out.pop("after"), te_ext.transfer_entropy(x, y))
        for name, message in out.items():
            if rank == 1:  # its own error, from the op
                assert message.startswith("ValueError") and "2" in message, (name, message)
            else:
                assert message.startswith("RuntimeError") and "rank(s) [1] failed" in message, \
                    (name, message)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: time_rows(40, rank=3, world=2), ValueError, "rank must be <= 1"),
    (lambda: time_rows(40, rank=0, world=0), ValueError, "world must be >= 1"),
    (lambda: split_range(10, 0, 0), ValueError, "parts must be >= 1"),
    (lambda: pair_block(4, 4, -1, 2), ValueError, "rank must be >= 0"),
    (lambda: time_rows(40, k=True, rank=0, world=1), TypeError, "k must be an int"),
    (lambda: te_ext.distributed.transfer_entropy(torch.zeros(5, 0, dtype=torch.bool),
                                                 torch.zeros(5, 2, dtype=torch.bool)),
     ValueError, "source is empty"),
])
def test_bad_distributed_arguments_are_named(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
