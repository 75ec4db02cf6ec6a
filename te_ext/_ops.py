"""Typed, documented Python entry points of the ``torch.ops.te`` ops.

Conventions shared by every op (the contract):

* Series are **time-major**: ``source`` is ``[T, I]`` and ``target`` is ``[T, J]``,
  optionally with a leading replicate dimension ``[R, T, I]`` / ``[R, T, J]``.
  Replicates are pooled into one histogram; history restarts in each replicate.
* With history lengths ``k`` (target), ``l`` (source) and ``delay``, the
  observations are ``n = n0 .. T-1`` with ``n0 = max(k, l - 1 + delay)`` and::

      ypast = sum_{m<k} y[n-1-m] * 2**m
      xpast = sum_{m<l} x[n-delay-m] * 2**m
      bin   = (y[n] << (k+l)) | (ypast << l) | xpast

* ``TE(x -> y)`` in bits is the plug-in estimate
  ``sum_bin p(bin) * log2(p(ynext | ypast, xpast) / p(ynext | ypast))``; empty bins
  contribute 0. It equals JIDT's ``TransferEntropyCalculatorDiscrete(2, k, 1, l, 1, delay)``
  and PyInform's ``transfer_entropy(x, y, k)`` when ``l = delay = 1``. The estimate is a
  conditional mutual information, so it is >= 0; rounding residue below 0 is returned as 0.
* ``threshold``: if given, input is binarised inside the kernel as ``value > threshold``
  (compared in double precision; a NaN input raises). If ``None``, the input must be bool
  or an integer dtype holding only 0 and 1.
* Dtypes: the kernels read bool, uint8, int8, int16, int32, int64, float16, bfloat16,
  float32 and float64. Every public function of te_ext also takes uint16, uint32, uint64 and
  float8 series, which it converts first (a copy; ``torch.ops.te.*`` itself raises TypeError
  for them): one preparation path, ``te_ext._prepare``.
* ``k``, ``l``, ``delay`` must be ints; a bool raises TypeError in every public function
  (the op schemas would read ``True`` as 1).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import _prepare
from ._triton import dispatch as _fused

__all__ = ["joint_counts", "te_from_counts", "transfer_entropy", "transfer_entropy_pairs"]

_series = _prepare.series
_check_ints = _prepare.ints


def joint_counts(source: Tensor, target: Tensor, k: int = 1, l: int = 1, delay: int = 1,
                 threshold: Optional[float] = None) -> Tensor:
    """Joint histogram of ``(ynext, ypast, xpast)`` for every source/target pair.

    Returns int64 ``[I, J, 2**(k+l+1)]``; entry ``[i, j, bin]`` counts the observations of
    pair (source ``i``, target ``j``) that fall in ``bin = (y[n] << (k+l)) | (ypast << l) | xpast``.
    Each pair's counts sum to ``R * (T - n0)``. See the module docstring for the conventions.
    """
    _check_ints("joint_counts", k=k, l=l, delay=delay)
    source, target = _series(source, threshold), _series(target, threshold)
    fused = _fused.maybe_joint_counts(source, target, k, l, delay, threshold)  # CUDA only
    if fused is not None:
        return fused
    return torch.ops.te.joint_counts(source, target, k, l, delay, threshold)


def te_from_counts(counts: Tensor, k: int = 1, l: int = 1) -> Tensor:
    """Transfer entropy in bits from joint counts laid out as :func:`joint_counts` returns them.

    ``counts`` is any integer tensor ``[..., 2**(k+l+1)]`` of non-negative counts; returns
    float64 ``counts.shape[:-1]``, computed as
    ``(sum f(c_bin) + sum f(c_ypast) - sum f(c_ypast,xpast) - sum f(c_ynext,ypast)) / N``
    with ``f(c) = c log2 c`` and ``N`` the pair's total. A pair with no observations gives 0.
    (The kernels evaluate ``f(c) = c log2(c / n_ref)`` with ``n_ref`` near ``N``, which gives the
    same sum in exact arithmetic and keeps it within 1e-15 bits of it in float64.)
    """
    _check_ints("te_from_counts", k=k, l=l)
    return torch.ops.te.te_from_counts(counts, k, l)


def transfer_entropy(source: Tensor, target: Tensor, k: int = 1, l: int = 1, delay: int = 1,
                     threshold: Optional[float] = None, *,
                     bias_correction: str = "none") -> Tensor:
    """``TE(source i -> target j)`` in bits for every pair: float64 ``[I, J]``.

    Fused: the counts of each pair are reduced to TE as they are made, so the
    ``[I, J, bins]`` histogram is never materialised. Equal to
    ``te_from_counts(joint_counts(...), k, l)``.

    ``bias_correction="analytic"`` subtracts the first-order (Miller–Madow /
    Panzeri–Treves) bias of the plug-in estimate, computed from each pair's numbers
    of occupied bins ``B``: ``(B(Yn,Yp,Xp) - B(Yp,Xp) - B(Yn,Yp) + B(Yp)) / (2 N ln 2)``
    (see :func:`te_ext.stats.analytic_bias`); the result can be negative. It goes
    through ``joint_counts`` (``[I, J, bins]`` int64 in memory).

    Example: a target that copies its source one step later receives one bit per step
    from it, and nothing flows back.

    >>> g = torch.Generator().manual_seed(0)
    >>> x = (torch.rand(10_000, 1, generator=g) < 0.5).to(torch.uint8)
    >>> y = torch.roll(x, 1, dims=0)
    >>> round(te_ext.transfer_entropy(x, y).item(), 2), round(te_ext.transfer_entropy(y, x).item(), 2)
    (1.0, 0.0)
    """
    _check_ints("transfer_entropy", k=k, l=l, delay=delay)
    source, target = _series(source, threshold), _series(target, threshold)
    if bias_correction != "none":
        from .stats import _corrected_transfer_entropy
        return _corrected_transfer_entropy(source, target, k, l, delay, threshold, bias_correction)
    fused = _fused.maybe_transfer_entropy(source, target, k, l, delay, threshold)  # CUDA only
    if fused is not None:
        return fused
    return torch.ops.te.transfer_entropy(source, target, k, l, delay, threshold)


def transfer_entropy_pairs(source: Tensor, target: Tensor, pairs: Tensor, k: int = 1,
                           l: int = 1, delay: int = 1,
                           threshold: Optional[float] = None) -> Tensor:
    """TE in bits for selected pairs only: int64 ``pairs [P, 2]`` of ``(i, j)`` -> float64 ``[P]``.

    Entry ``q`` equals ``transfer_entropy(source, target, ...)[pairs[q, 0], pairs[q, 1]]``;
    the cost is proportional to ``P``, not ``I * J``.
    """
    _check_ints("transfer_entropy_pairs", k=k, l=l, delay=delay)
    return torch.ops.te.transfer_entropy_pairs(_series(source, threshold),
                                               _series(target, threshold), pairs, k, l, delay,
                                               threshold)
