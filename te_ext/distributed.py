"""All-pairs TE past one machine: the [I, J] matrix sharded over ``torch.distributed`` ranks.

Two ways to split the work, both exact (bit-identical to the single-process op):

* ``shard="pairs"`` (default): every rank holds the full series and computes one contiguous
  block of the matrix: rows ``[i0, i1)`` of all targets when ``I >= J``, else columns
  ``[j0, j1)`` of all sources, the blocks as even as the world size allows (sizes differ by at
  most one). A pair's TE depends only on its own counts and its target's marginals, so a block
  computed alone equals the same entries of the whole matrix bit for bit.
* ``shard="time"``: for series too long for one rank. The observations ``n0 .. T-1`` are split
  into contiguous ranges, one per rank; each rank counts the int64 joint histogram of its range
  (``joint_counts`` over its rows plus the ``n0`` rows of history before them), the counts are
  all-reduced (integers: exact), and ``te_from_counts`` turns them into TE on every rank.
  A rank may hold only its own rows: :func:`time_rows` says which.

Works with gloo (CPU tensors) and NCCL (CUDA tensors: the series must be on this rank's GPU).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
from torch import Tensor

from . import _prepare
from ._checks import check_int
from ._ops import joint_counts, te_from_counts
from ._ops import transfer_entropy as _transfer_entropy
from .delays import transfer_entropy_delays as _transfer_entropy_delays

__all__ = ["transfer_entropy", "transfer_entropy_delays", "pair_block", "time_rows",
           "split_range"]

Block = Tuple[int, int, int, int]


def split_range(n: int, parts: int, index: int) -> Tuple[int, int]:
    """``[lo, hi)`` of part ``index`` when ``0 .. n-1`` is cut into ``parts`` contiguous pieces
    whose sizes differ by at most one (the first ``n % parts`` pieces are the longer ones)."""
    check_int("n", n, 0)
    check_int("parts", parts, 1)
    check_int("index", index, 0, parts - 1)
    base, extra = divmod(n, parts)
    lo = index * base + min(index, extra)
    return lo, lo + base + (1 if index < extra else 0)


def pair_block(I: int, J: int, rank: int, world: int) -> Block:
    """The block ``(i0, i1, j0, j1)`` of the ``[I, J]`` matrix that ``rank`` of ``world``
    computes: the longer axis is split into ``world`` even pieces."""
    check_int("I", I, 0)
    check_int("J", J, 0)
    _check_rank(rank, world)
    if I >= J:
        i0, i1 = split_range(I, world, rank)
        return i0, i1, 0, J
    j0, j1 = split_range(J, world, rank)
    return 0, I, j0, j1


def _first_observation(k: int, l: int, delay: int) -> int:
    return max(k, l - 1 + delay)


def time_rows(T: int, *, k: int = 1, l: int = 1, delay: int = 1, rank: int, world: int
              ) -> Tuple[int, int]:
    """Rows ``[t0, t1)`` of a length-``T`` series that ``rank`` needs under ``shard="time"``:
    its share of the observations ``n0 .. T-1`` (``n0 = max(k, l - 1 + delay)``) plus the
    ``n0`` rows of history before the first one. A rank with no observations gets ``(t, t)``."""
    check_int("T", T, 0)
    for name, v in (("k", k), ("l", l), ("delay", delay)):
        check_int(name, v, 1)
    _check_rank(rank, world)
    n0 = _first_observation(k, l, delay)
    a, b = split_range(max(T - n0, 0), world, rank)
    if b <= a:
        return n0 + a, n0 + a
    return a, n0 + b


def _check_rank(rank: int, world: int) -> None:
    check_int("world", world, 1)
    check_int("rank", rank, 0, world - 1)


def _check_series(op: str, source, target) -> None:
    """The shapes the sharding reads, refused with the op's own words before any narrowing."""
    for name, x in (("source", source), ("target", target)):
        if not isinstance(x, Tensor):
            raise TypeError(f"te_ext.distributed.{op}: {name} must be a Tensor, got "
                            f"{type(x).__name__}")
        if x.dim() not in (2, 3):
            raise ValueError(f"te_ext.distributed.{op}: {name} must be [T, n] or [R, T, n], got "
                             f"shape {list(x.shape)}")
        if x.numel() == 0:
            raise ValueError(f"te_ext.distributed.{op}: {name} is empty (shape {list(x.shape)}); "
                             f"every dimension must be at least 1")


# What every rank must pass alike, in this order; a digest of each is compared before any work.
_AGREED = ("op", "checks", "k", "l", "delay", "threshold", "shard", "total_length", "gather", "delays",
           "source dtype", "target dtype", "source neurons", "target neurons", "replicates",
           "rows")


def _digest(value: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(value).encode()).digest()[:7], "little")


def _agree(group, backend: str, fields: dict) -> None:
    """One small all-gather of a digest per argument; ValueError on every rank naming the first
    argument that differs (ranks that disagreed would abort in gloo, hang until its timeout, or
    compute a silently wrong matrix)."""
    mine = torch.tensor([_digest(fields.get(name)) for name in _AGREED], dtype=torch.int64,
                        device=_comm_device(backend))
    world = dist.get_world_size(group)
    every = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(every, mine, group=group)
    for col, name in enumerate(_AGREED):
        values = {int(t[col]) for t in every}
        if len(values) > 1:
            ranks = [r for r, t in enumerate(every) if int(t[col]) != int(mine[col])]
            if name == "checks":
                raise ValueError(f"te_ext.distributed.{fields['op']}: the arguments failed their "
                                 f"checks on some rank(s) but not on others (this rank differs "
                                 f"from rank(s) {ranks}); every rank must pass the same "
                                 f"arguments")
            raise ValueError(f"te_ext.distributed.{fields['op']}: every rank must pass the same "
                             f"{name}; this rank's ({fields.get(name)!r}) differs from rank(s) "
                             f"{ranks}")


def _agreed(group, op: str, prepare: Callable[[], dict]) -> str:
    """This rank's argument checks (``prepare`` runs them and returns the fields to agree on),
    then the agreement with the other ranks, so that a check failing on some ranks only raises
    on every rank (there its own error) instead of leaving the others blocked in the next
    collective. Returns the backend."""
    try:
        fields, error = prepare(), None
    except (ValueError, TypeError) as exc:
        fields, error = {"op": op, "checks": f"{type(exc).__name__}: {exc}"}, exc
    if error is not None and not (dist.is_available() and dist.is_initialized()):
        raise error  # no group to agree with: the argument's own error comes first
    _, _, backend = _group_info(group)
    try:
        _agree(group, backend, fields)
    except ValueError:
        if error is not None:
            raise error from None
        raise
    if error is not None:
        raise error
    return backend


def _local_share(group, backend: str, op: str, work: Callable[[], Any]) -> Any:
    """This rank's share of the work, then one small all-gather of whether every rank's share
    succeeded, before the collective that pools the shares. An error that depends on a rank's
    data (a non-binary value in the columns only it packs, its own rows under
    ``total_length``, memory) would otherwise raise on that rank alone and leave the others
    blocked in the pooling collective until the backend's timeout. The rank that failed raises
    its own error; the others raise a RuntimeError naming it."""
    try:
        result, error = work(), None
    except Exception as exc:  # whatever it is, the other ranks must hear of it
        result, error = None, exc
    flag = torch.tensor([0 if error is None else 1], dtype=torch.int64,
                        device=_comm_device(backend))
    every = [torch.empty_like(flag) for _ in range(dist.get_world_size(group))]
    dist.all_gather(every, flag, group=group)
    if error is not None:
        raise error
    failed = [r for r, t in enumerate(every) if int(t[0]) != 0]
    if failed:
        raise RuntimeError(f"te_ext.distributed.{op}: rank(s) {failed} failed on their share of "
                           f"the work (their error says why); no rank returns a result")
    return result


def _fields(op, source, target, **args) -> dict:
    time_sharded = args.get("shard") == "time"
    return {"op": op, **args, "source dtype": str(source.dtype), "target dtype": str(target.dtype),
            "source neurons": source.shape[-1], "target neurons": target.shape[-1],
            # rows may differ per rank under total_length; replicates may not
            "replicates": source.shape[0] if source.dim() == 3 else None,
            "rows": None if time_sharded else source.shape[-2]}


def _group_info(group) -> Tuple[int, int, str]:
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("te_ext.distributed: torch.distributed is not initialised; call "
                           "torch.distributed.init_process_group first (or use torchrun)")
    return (dist.get_rank(group), dist.get_world_size(group),
            str(dist.get_backend(group)).lower())


def _comm_device(backend: str) -> torch.device:
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _all_gather_blocks(block: Tensor, blocks: Sequence[Block], axis: int, group, backend: str
                       ) -> Tensor:
    """Concatenates every rank's block along ``axis`` (-2: rows, -1: columns). Blocks of
    uneven size are padded to the largest for the collective and trimmed after."""
    sizes = [(b[1] - b[0]) if axis == -2 else (b[3] - b[2]) for b in blocks]
    most = max(sizes)
    dev = _comm_device(backend)
    shape = list(block.shape)
    shape[axis] = most
    padded = torch.zeros(shape, dtype=block.dtype, device=dev)
    padded.narrow(axis, 0, block.shape[axis]).copy_(block)
    parts = [torch.empty_like(padded) for _ in blocks]
    dist.all_gather(parts, padded, group=group)
    whole = torch.cat([p.narrow(axis, 0, s) for p, s in zip(parts, sizes)], dim=axis)
    return whole.to(block.device)


def _sharded_by_pairs(op: str, compute, source: Tensor, target: Tensor, threshold, group,
                      gather: bool):
    rank, world, backend = _group_info(group)
    I, J = source.shape[-1], target.shape[-1]
    blocks = [pair_block(I, J, r, world) for r in range(world)]
    i0, i1, j0, j1 = blocks[rank]

    def share():
        # An empty block (more ranks than rows) still runs the op on one row, for its checks
        # and the block's shape, and keeps no entries.
        src = source.narrow(-1, i0, i1 - i0) if i1 > i0 else source.narrow(-1, 0, 1)
        tgt = target.narrow(-1, j0, j1 - j0) if j1 > j0 else target.narrow(-1, 0, 1)
        block = compute(_prepare.series(src, threshold), _prepare.series(tgt, threshold))
        if i1 <= i0:
            block = block.narrow(-2, 0, 0)
        if j1 <= j0:
            block = block.narrow(-1, 0, 0)
        return block

    block = _local_share(group, backend, op, share)
    if not gather:
        return block, (i0, i1, j0, j1)
    return _all_gather_blocks(block, blocks, -2 if I >= J else -1, group, backend)


def _rows(x: Tensor, t0: int, t1: int) -> Tensor:
    return x.narrow(x.dim() - 2, t0, t1 - t0)


def _sharded_by_time(source: Tensor, target: Tensor, k: int, l: int, delay: int, threshold,
                     group, total_length: Optional[int], gather: bool):
    rank, world, backend = _group_info(group)
    T = source.shape[-2] if total_length is None else int(total_length)
    n0 = _first_observation(k, l, delay)
    if T <= n0:
        raise ValueError(f"te_ext.distributed.transfer_entropy: series too short for k, l, delay: "
                         f"T = {T} but k={k}, l={l}, delay={delay} need T > max(k, l - 1 + delay)"
                         f" = {n0}")
    t0, t1 = time_rows(T, k=k, l=l, delay=delay, rank=rank, world=world)
    I, J = source.shape[-1], target.shape[-1]
    bins = 2 ** (k + l + 1)

    def share():
        if total_length is None:
            src, tgt = _rows(source, t0, t1), _rows(target, t0, t1)
        else:
            if source.shape[-2] != t1 - t0 or target.shape[-2] != t1 - t0:
                raise ValueError(f"te_ext.distributed.transfer_entropy: with total_length={T} "
                                 f"rank {rank} must pass rows [{t0}, {t1}) of the series "
                                 f"({t1 - t0} rows, from time_rows), got source with "
                                 f"{source.shape[-2]} and target with {target.shape[-2]}")
            src, tgt = source, target
        if t1 - t0 <= n0:  # no observations here: nothing to count (the op would reject them)
            return torch.zeros((I, J, bins), dtype=torch.int64, device=source.device)
        return joint_counts(_prepare.series(src, threshold), _prepare.series(tgt, threshold),
                            k, l, delay, threshold)

    counts = _local_share(group, backend, "transfer_entropy", share)
    dev = _comm_device(backend)
    pooled = counts.to(dev)
    dist.all_reduce(pooled, op=dist.ReduceOp.SUM, group=group)
    te = te_from_counts(pooled.to(source.device), k, l)
    return te if gather else (te, (0, I, 0, J))


def transfer_entropy(source: Tensor, target: Tensor, *, k: int = 1, l: int = 1, delay: int = 1,
                     threshold: Optional[float] = None, group=None, gather: bool = True,
                     shard: str = "pairs", total_length: Optional[int] = None
                     ) -> Union[Tensor, Tuple[Tensor, Block]]:
    """``te_ext.transfer_entropy`` computed by all ranks of ``group`` (default: the world).

    Every rank calls it with the same arguments. ``gather=True`` returns the whole float64
    ``[I, J]`` matrix on every rank, bit-identical to the single-process op; ``gather=False``
    returns ``(block, (i0, i1, j0, j1))``, this rank's entries ``[i0:i1, j0:j1]``.

    ``shard="pairs"`` (default): each rank holds the full series and computes a block of
    pairs. ``shard="time"``: each rank counts a slice of the observations and the int64 counts
    are all-reduced; pass the full series, or, with ``total_length=T``, only this rank's rows
    ``[t0, t1) = time_rows(T, k=k, l=l, delay=delay, rank=rank, world=world)``. Under time
    sharding every rank ends with the whole matrix (``gather=False`` gives it with the block
    ``(0, I, 0, J)``); its memory is the ``[I, J, 2**(k+l+1)]`` int64 counts.
    """
    def prepare():
        if shard not in ("pairs", "time"):
            raise ValueError(f"te_ext.distributed.transfer_entropy: shard must be 'pairs' or "
                             f"'time', got {shard!r}")
        if shard == "pairs" and total_length is not None:
            raise ValueError("te_ext.distributed.transfer_entropy: total_length applies to "
                             "shard='time' only")
        _prepare.ints("transfer_entropy", k=k, l=l, delay=delay)
        _check_series("transfer_entropy", source, target)
        return _fields("transfer_entropy", source, target, k=k, l=l, delay=delay,
                       threshold=threshold, shard=shard, total_length=total_length, gather=gather)

    _agreed(group, "transfer_entropy", prepare)
    if shard == "pairs":
        return _sharded_by_pairs(
            "transfer_entropy", lambda s, t: _transfer_entropy(s, t, k, l, delay, threshold),
            source, target, threshold, group, gather)
    return _sharded_by_time(source, target, k, l, delay, threshold, group, total_length, gather)


def transfer_entropy_delays(source: Tensor, target: Tensor, delays, *, k: int = 1, l: int = 1,
                            threshold: Optional[float] = None, signed: bool = False, group=None,
                            gather: bool = True):
    """``te_ext.transfer_entropy_delays`` with the pairs sharded over ranks as in
    :func:`transfer_entropy` (``shard="pairs"``): float64 ``[D, I, J]`` on every rank, or
    ``(block [D, i1-i0, j1-j0], (i0, i1, j0, j1))`` with ``gather=False``. With
    ``signed=True`` each of those tensors is a ``(te, signed)`` pair, as there."""
    scan: List[int] = []

    def prepare():
        _prepare.ints("transfer_entropy_delays", k=k, l=l)
        _prepare.flag("transfer_entropy_delays", signed=signed)
        _check_series("transfer_entropy_delays", source, target)
        scan.extend(_prepare.delays(delays, longest=source.shape[-2], l=l))
        return _fields("transfer_entropy_delays", source, target, k=k, l=l, threshold=threshold,
                       gather=gather, delays=scan, signed=signed)

    _agreed(group, "transfer_entropy_delays", prepare)
    delays = scan
    if not signed:
        return _sharded_by_pairs(
            "transfer_entropy_delays",
            lambda s, t: _transfer_entropy_delays(s, t, delays, k=k, l=l, threshold=threshold),
            source, target, threshold, group, gather)
    # Both planes travel as one [2, D, ...] tensor: one collective, split after.
    out = _sharded_by_pairs(
        "transfer_entropy_delays",
        lambda s, t: torch.stack(_transfer_entropy_delays(s, t, delays, k=k, l=l,
                                                          threshold=threshold, signed=True)),
        source, target, threshold, group, gather)
    if gather:
        return out[0], out[1]
    block, where = out
    return (block[0], block[1]), where
