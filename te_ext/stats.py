"""Statistics of transfer entropy: permutation surrogates with p-values for all pairs,
the analytic (Miller–Madow / Panzeri–Treves) bias correction, local TE, and the
Benjamini–Hochberg procedure.

Conventions (series, ``k``, ``l``, ``delay``, ``threshold``, replicates) are those of
:mod:`te_ext._ops`. ``n_obs = R * (T - n0)`` is the number of pooled observations,
``n0 = max(k, l - 1 + delay)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from . import _prepare
from ._checks import check_history, check_int, check_memory

__all__ = ["SignificanceResult", "analytic_bias", "benjamini_hochberg", "local_transfer_entropy",
           "significance", "surrogate_permutations"]

# Permutations are generated and sent to the op in chunks of at most this many bytes
# (int64 [chunk, n_obs]); each chunk re-packs the inputs once, a small cost next to the
# surrogates themselves.
_PERMUTATION_CHUNK_BYTES = 64 << 20


@dataclass(frozen=True)
class SignificanceResult:
    """What :func:`significance` returns; every tensor is float64 ``[I, J]`` (or ``[P]``).

    Attributes:
        te: the plug-in TE, equal to :func:`te_ext.transfer_entropy`.
        p_value: ``(1 + #{surrogate TE >= te - 1e-12}) / (1 + surrogates)``: a surrogate
            equal to the observed TE up to rounding counts as reaching it, on every device
            (``kTieTolerance`` in ``csrc/stats_math.h``).
        surrogate_mean: mean TE over the surrogates.
        surrogate_std: standard deviation (ddof = 0) over the surrogates.
        effective: ``te - surrogate_mean``, the "effective TE" of Marschinski & Kantz (2002).
        surrogates: the number of surrogates.
    """

    te: Tensor
    p_value: Tensor
    surrogate_mean: Tensor
    surrogate_std: Tensor
    effective: Tensor
    surrogates: int


def _n_obs(source: Tensor, target: Tensor, k: int, l: int, delay: int) -> Optional[int]:
    """Pooled observations, or None where the op will reject the shapes anyway."""
    if not isinstance(source, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"source and target must be Tensors, got {type(source).__name__} and "
                        f"{type(target).__name__}")
    if source.dim() not in (2, 3):
        return None
    n0 = max(k, l - 1 + delay)
    t = source.shape[-2]
    reps = source.shape[0] if source.dim() == 3 else 1
    return reps * (t - n0) if t > n0 and reps > 0 else None


def _draw(g: torch.Generator, n_obs: int, m: int, owner: str = "surrogate_permutations") -> Tensor:
    # Refused by name before the allocation (2**40 x 2**40 would otherwise overflow the size
    # calculation, and a huge series would ask the host for tens of GB).
    if m * n_obs >= 2**63 // 8:
        raise ValueError(f"{owner}: {m} permutations of {n_obs} observations need "
                         f"{m} x {n_obs} x 8 bytes, beyond int64")
    check_memory(owner, [(m * n_obs * 8, f"{m} permutations of n_obs={n_obs} observations "
                                         "(int64, on the host)")], torch.device("cpu"))
    out = torch.empty(m, n_obs, dtype=torch.int64)
    for s in range(m):
        torch.randperm(n_obs, generator=g, out=out[s])
    return out


def surrogate_permutations(n_obs: int, surrogates: int, seed: int = 0) -> Tensor:
    """The permutations :func:`significance` uses: int64 ``[surrogates, n_obs]``.

    Row ``s`` is the ``s``-th ``torch.randperm(n_obs)`` drawn from a CPU ``torch.Generator``
    seeded with ``seed``. They are always drawn on the CPU, so every device and thread
    count gets the same ones.
    """
    check_int("n_obs", n_obs, 1)
    check_int("surrogates", surrogates, 1)
    check_int("seed", seed, 0)
    return _draw(torch.Generator(device="cpu").manual_seed(seed), n_obs, surrogates)


def significance(source: Tensor, target: Tensor, *, surrogates: int = 1000, k: int = 1,
                 l: int = 1, delay: int = 1, threshold: Optional[float] = None,
                 pairs: Optional[Tensor] = None, seed: int = 0) -> SignificanceResult:
    """TE with permutation-surrogate statistics for every pair (or the listed ``pairs``).

    Surrogates follow JIDT's discrete ``computeSignificance``: surrogate ``s`` applies a
    random permutation of the observations to the source's past state (the whole ``l``-bit
    ``xpast`` of each observation) while ``(ynext, ypast)`` stay in place; with replicates
    the permutation runs over all pooled observations. The same permutation serves every
    pair of the call (as JIDT uses one per pair), which is what lets all pairs be counted
    together: each surrogate costs about one :func:`te_ext.transfer_entropy` call, and the
    ``[surrogates, I, J]`` values are reduced on the fly, never stored.

    ``seed`` fixes the permutations (:func:`surrogate_permutations`): the same seed gives
    bit-identical results on every thread count, and the same permutations on every device.

    Returns a :class:`SignificanceResult` (float64 ``[I, J]``, or ``[P]`` for int64
    ``pairs [P, 2]``).
    """
    check_int("surrogates", surrogates, 1)
    check_int("seed", seed, 0)
    for name, value in (("k", k), ("l", l), ("delay", delay)):
        check_int(name, value, 1)
    check_history("te.transfer_entropy_surrogates", k, l)
    source, target = _prepare.series(source, threshold), _prepare.series(target, threshold)
    n_obs = _n_obs(source, target, k, l, delay)
    op = torch.ops.te.transfer_entropy_surrogates
    if n_obs is None:  # let the op name what is wrong with the series
        op(source, target, torch.empty(1, 0, dtype=torch.int64, device=source.device), k, l,
           delay, threshold, pairs)
        raise AssertionError("unreachable: the op accepted series it cannot have")
    chunk = max(1, _PERMUTATION_CHUNK_BYTES // (8 * n_obs))
    g = torch.Generator(device="cpu").manual_seed(seed)
    te = at_least = total = total_sq = None
    done = 0
    while done < surrogates:
        m = min(chunk, surrogates - done)
        perm = _draw(g, n_obs, m, "te.transfer_entropy_surrogates")
        te, c, s1, s2 = op(source, target, perm.to(source.device), k, l, delay, threshold, pairs)
        if at_least is None:
            at_least, total, total_sq = c, s1, s2
        else:
            at_least, total, total_sq = at_least + c, total + s1, total_sq + s2
        done += m
    mean = total / surrogates
    var = (total_sq / surrogates - mean * mean).clamp_(min=0.0)
    p_value = (1.0 + at_least.to(torch.float64)) / (1.0 + surrogates)
    return SignificanceResult(te=te, p_value=p_value, surrogate_mean=mean,
                              surrogate_std=var.sqrt(), effective=te - mean,
                              surrogates=surrogates)


def local_transfer_entropy(source: Tensor, target: Tensor, pairs: Tensor, *, k: int = 1,
                           l: int = 1, delay: int = 1,
                           threshold: Optional[float] = None) -> Tensor:
    """Local TE of each listed pair at every observation: float64 ``[P, n_obs]``.

    Entry ``[q, n]`` is ``log2( p(ynext | ypast, xpast) / p(ynext | ypast) )`` at observation
    ``n`` of pair ``pairs[q] = (i, j)``, with the plug-in probabilities of the whole series
    (all replicates pooled). Observations run ``n = n0 .. T-1`` in time order, replicate by
    replicate. The mean over ``n`` equals :func:`te_ext.transfer_entropy` for that pair;
    it equals PyInform's ``transfer_entropy(x, y, k, local=True)`` for ``l = delay = 1``.
    """
    _prepare.ints("local_transfer_entropy", k=k, l=l, delay=delay)
    return torch.ops.te.local_transfer_entropy(_prepare.series(source, threshold),
                                               _prepare.series(target, threshold), pairs, k, l,
                                               delay, threshold)


def analytic_bias(counts: Tensor, k: int = 1, l: int = 1) -> Tensor:
    r"""First-order bias, in bits, of the plug-in TE of joint counts ``[..., 2**(k+l+1)]``.

    TE is the conditional mutual information
    ``H(Yn, Yp) - H(Yp) - H(Yn, Yp, Xp) + H(Yp, Xp)``. The Miller–Madow correction
    ``E[H_plugin] ≈ H - (B - 1) / (2 N ln 2)`` (``B`` occupied bins, ``N`` observations),
    applied to each term, is the Panzeri–Treves bias of the plug-in estimate:

        bias = (B(Yn, Yp, Xp) - B(Yp, Xp) - B(Yn, Yp) + B(Yp)) / (2 N ln 2)

    with ``B(.)`` the number of occupied (non-zero) bins of each marginal of the pair's
    histogram. A pair with no observations has bias 0. Returns float64 ``counts.shape[:-1]``.
    """
    check_int("k", k, 1)
    check_int("l", l, 1)
    check_history("te_ext.stats.analytic_bias", k, l)  # before anything forms 2**(k+l+1)
    if not isinstance(counts, Tensor):
        raise TypeError(f"counts must be a Tensor, got {type(counts).__name__}")
    bins = 2 ** (k + l + 1)
    if counts.shape[-1] != bins:
        raise ValueError(f"counts' last dimension must be 2**(k+l+1) = {bins}, got {counts.shape[-1]}")
    c = counts.reshape(*counts.shape[:-1], 2, 2 ** k, 2 ** l)  # [..., ynext, ypast, xpast]
    b_all = (c > 0).flatten(-3).sum(-1)
    b_past = (c.sum(-3) > 0).flatten(-2).sum(-1)        # (ypast, xpast)
    b_target = (c.sum(-1) > 0).flatten(-2).sum(-1)      # (ynext, ypast)
    b_ypast = (c.sum((-3, -1)) > 0).sum(-1)             # ypast
    n = counts.sum(-1).to(torch.float64)
    bias = (b_all - b_past - b_target + b_ypast).to(torch.float64) / (2.0 * n * math.log(2.0))
    return torch.where(n > 0, bias, torch.zeros_like(bias))


def sorted_local_te(counts: Tensor, k: int = 1, l: int = 1) -> Tensor:
    r"""Sorted local transfer entropy (Kajiwara et al., PLoS Comput Biol 2021, 17:e1008846), in
    bits, from joint counts ``[..., 2**(k+l+1)]`` as :func:`te_ext.joint_counts` returns them:
    float64 ``counts.shape[:-1]``, the TE with each bin's term signed.

    TE is the mean of the local TEs, ``\sum_b p(b) \log_2 \frac{p(y_n | y_p, x_p)}{p(y_n | y_p)}``
    over the bins ``b = (y_n, y_p, x_p)``. Sorted local TE gives each term the sign ``+1`` when
    the target's next value equals the source's most recent past value (``y[n] = x[n-delay]``,
    bit 0 of ``x_p``) and ``-1`` otherwise. This is the ``rule = [+1, -1, +1, -1, -1, +1, -1,
    +1]`` of the authors' ``ASDFTEslteKyotoCuda_mod.m``, indexed by their bin code, for
    ``k = l = 1``.

    A source spike that raises the target's chance to spike next makes the agreeing bins more
    likely than chance, so the signed sum is positive (excitatory). One that lowers it makes
    them less likely, so the sum is negative (inhibitory). Local TEs can be negative, so
    ``|SLTE|`` is not bounded by TE. It comes from the same counts as TE: no second pass over
    the data. A pair with no observations gives 0. The op is ``torch.ops.te.sorted_local_te``;
    its math is ``stats::sorted_local_te_from_joint_counts`` (csrc/stats_math.h), which the delay
    scan :func:`te_ext.transfer_entropy_delays` with ``signed=True`` evaluates too.
    """
    check_int("k", k, 1)
    check_int("l", l, 1)
    check_history("te_ext.stats.sorted_local_te", k, l)
    if not isinstance(counts, Tensor):
        raise TypeError(f"counts must be a Tensor, got {type(counts).__name__}")
    return torch.ops.te.sorted_local_te(counts, k, l)


def signed_transfer_entropy(source: Tensor, target: Tensor, *, k: int = 1, l: int = 1,
                            delay: int = 1, threshold: Optional[float] = None) -> Tensor:
    """Sorted local TE (:func:`sorted_local_te`) of every pair: float64 ``[I, J]``, positive for
    an excitatory link, negative for an inhibitory one.

    >>> g = torch.Generator().manual_seed(0)
    >>> x = (torch.rand(20_000, 1, generator=g) < 0.3).to(torch.uint8)
    >>> excited = torch.roll(x, 1, dims=0)      # fires after the source fires
    >>> inhibited = 1 - torch.roll(x, 1, dims=0)  # silent after the source fires
    >>> s = te_ext.signed_transfer_entropy(x, torch.cat([excited, inhibited], dim=1))
    >>> bool(s[0, 0] > 0), bool(s[0, 1] < 0)
    (True, True)
    """
    _prepare.ints("signed_transfer_entropy", k=k, l=l, delay=delay)
    counts = torch.ops.te.joint_counts(_prepare.series(source, threshold),
                                       _prepare.series(target, threshold), k, l, delay, threshold)
    return sorted_local_te(counts, k, l)


def _corrected_transfer_entropy(source: Tensor, target: Tensor, k: int, l: int, delay: int,
                                threshold: Optional[float], bias_correction: str) -> Tensor:
    """``transfer_entropy(..., bias_correction=...)`` for a correction other than "none"."""
    if bias_correction != "analytic":
        raise ValueError(f"bias_correction must be 'none' or 'analytic', got {bias_correction!r}")
    counts = torch.ops.te.joint_counts(source, target, k, l, delay, threshold)
    return torch.ops.te.te_from_counts(counts, k, l) - analytic_bias(counts, k, l)


def benjamini_hochberg(p_values: Tensor, alpha: float = 0.05) -> Tensor:
    """Benjamini–Hochberg false-discovery-rate control over all entries of ``p_values``.

    Returns a bool tensor of ``p_values``' shape: True for the rejected nulls (the
    discoveries), i.e. the ``m`` smallest p-values where ``m`` is the largest rank with
    ``p_(m) <= alpha * m / N`` over all ``N`` entries. Controls the FDR at ``alpha`` for
    independent or positively dependent tests.
    """
    if not isinstance(p_values, Tensor):
        raise TypeError(f"p_values must be a Tensor, got {type(p_values).__name__}")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    flat = p_values.reshape(-1).to(torch.float64)
    if flat.numel() == 0:
        return torch.zeros_like(p_values, dtype=torch.bool)
    if bool(torch.isnan(flat).any()) or bool(((flat < 0) | (flat > 1)).any()):
        raise ValueError("p_values must lie in [0, 1] (no NaN)")
    n = flat.numel()
    order = torch.argsort(flat, stable=True)
    ranks = torch.arange(1, n + 1, dtype=torch.float64, device=flat.device)
    below = flat[order] <= alpha * ranks / n
    keep = torch.zeros(n, dtype=torch.bool, device=flat.device)
    if bool(below.any()):
        m = int(torch.nonzero(below).max()) + 1
        keep[order[:m]] = True
    return keep.reshape(p_values.shape)
