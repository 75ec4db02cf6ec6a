"""What :class:`te_ext.TEFeedback` puts in its update slot at each refresh.

The default is the plug-in transfer entropy of the window's counts, computed by TEFeedback
itself in one op. This module holds the alternatives: TE's other estimators, and the
modulators of the paper's own ablations. Each gives a non-negative float64 ``[sources,
targets]`` matrix ``M`` from the same window, the same binarisation and the same slot
(``grad * (1 + M)ᵀ`` for the paper rule).

Measures (``TEFeedback(measure=...)``):

* ``"te"``: transfer entropy, with ``estimator`` ``"plugin"``, ``"analytic"`` or ``"effective"``.
* ``"mi"``: the mutual information ``I(x; y)`` in bits of each pair's binary series. It is
  read from the same joint counts as TE: marginalised to the pair ``(y[n-1], x[n-delay])``,
  so it is contemporaneous for the default ``delay = 1`` and at lag ``delay - 1`` otherwise.
* ``"phi"``: ``|φ|``, the absolute Pearson correlation of the same two binary series (the
  φ coefficient of their 2×2 table). It is 0 where either series is constant.
* ``"te_shifted"``: the shuffled control. This is TE of the source circularly shifted by half
  the window against the unshifted target. Each source keeps its marginals (the same ones and
  zeros, in the same order, only displaced in time), and its timing relative to the target is
  destroyed.

``"mi"``, ``"phi"`` and ``"te_shifted"`` take the plug-in estimator and all pairs only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_int
from .stats import analytic_bias, significance

ESTIMATORS = ("plugin", "analytic", "effective")
MEASURES = ("te", "mi", "phi", "te_shifted")


def check_estimator(estimator: str, surrogates: int) -> tuple:
    """Validated ``(estimator, surrogates)`` of :class:`te_ext.TEFeedback`."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    check_int("surrogates", surrogates, 1)
    return estimator, surrogates


def check_measure(measure: str, estimator: str, pair_fraction: float) -> str:
    """Validated ``measure`` of :class:`te_ext.TEFeedback`, given its other settings."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if measure != "te" and estimator != "plugin":
        raise ValueError(f"measure={measure!r} takes the plug-in estimator only, got "
                         f"estimator={estimator!r}")
    if measure != "te" and pair_fraction != 1.0:
        raise ValueError(f"measure={measure!r} is computed for all pairs; pair_fraction must "
                         f"be 1, got {pair_fraction}")
    return measure


def feedback_config(fb) -> dict:
    """The estimator's and the measure's part of a TEFeedback config (empty for the defaults,
    so that states saved before they existed still load)."""
    out = {} if fb.estimator == "plugin" else {"estimator": fb.estimator,
                                               "surrogates": fb.surrogates}
    if fb.measure != "te":
        out["measure"] = fb.measure
    return out


def _world() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def pooled_counts(fb) -> Tensor:
    """The window's joint counts, summed over ranks under torch.distributed."""
    counts = fb.window.counts
    if _world() > 1:
        counts = counts.clone()
        torch.distributed.all_reduce(counts)
    return counts


def pooled_series(fb):
    """The window's series, as one replicate per rank under torch.distributed."""
    src, tgt = fb.window.window_series()
    world = _world()
    if world > 1:
        gs = [torch.empty_like(src) for _ in range(world)]
        gt = [torch.empty_like(tgt) for _ in range(world)]
        torch.distributed.all_gather(gs, src.contiguous())
        torch.distributed.all_gather(gt, tgt.contiguous())
        src, tgt = torch.stack(gs), torch.stack(gt)
    return src, tgt


def lag_table(counts: Tensor, k: int, l: int) -> Tensor:
    """float64 ``[..., 2, 2]``: the counts of ``(y[n-1], x[n-delay])`` (bit 0 of ypast, bit 0
    of xpast) from joint counts ``[..., 2^(k+l+1)]`` laid out as ``joint_counts`` returns them
    (``bin = (ynext << (k+l)) | (ypast << l) | xpast``)."""
    lead = counts.shape[:-1]
    c = counts.to(torch.float64).reshape(*lead, 2, 1 << (k - 1), 2, 1 << (l - 1), 2)
    # axes: ynext, ypast >> 1, ypast bit 0, xpast >> 1, xpast bit 0
    n = len(lead)
    return c.sum(dim=(n, n + 1, n + 3))


def mutual_information(table: Tensor) -> Tensor:
    """``I(y; x)`` in bits of ``[..., 2, 2]`` counts; 0 for an empty table."""
    n = table.sum(dim=(-2, -1), keepdim=True)
    py = table.sum(dim=-1, keepdim=True)
    px = table.sum(dim=-2, keepdim=True)
    # sum c log2(c n / (c_y c_x)) / n, with 0 log 0 = 0
    terms = torch.special.xlogy(table, table * n) - torch.special.xlogy(table, py * px)
    mi = terms.sum(dim=(-2, -1)) / n.squeeze(-1).squeeze(-1).clamp(min=1.0)
    return (mi / torch.log(torch.tensor(2.0, dtype=torch.float64))).clamp(min=0.0)


def phi_abs(table: Tensor) -> Tensor:
    """``|φ|`` of ``[..., 2, 2]`` counts (rows y, columns x); 0 where a margin is empty."""
    n00, n01, n10, n11 = table[..., 0, 0], table[..., 0, 1], table[..., 1, 0], table[..., 1, 1]
    den = (n10 + n11) * (n00 + n01) * (n01 + n11) * (n00 + n10)
    num = (n11 * n00 - n10 * n01).abs()
    return torch.where(den > 0, num / den.clamp(min=1.0).sqrt(), torch.zeros_like(num))


def shift_source(src: Tensor, shift: int) -> Tensor:
    """The source series rolled by ``shift`` steps along time (``[..., T, I]``)."""
    return torch.roll(src, shifts=shift, dims=-2)


def estimate(fb) -> Tensor:
    """float64 ``[sources, targets]`` M of a TEFeedback whose measure or estimator is not the
    default plug-in TE."""
    if fb.measure in ("mi", "phi"):
        table = lag_table(pooled_counts(fb), fb.k, fb.l)
        return mutual_information(table) if fb.measure == "mi" else phi_abs(table)
    if fb.measure == "te_shifted":
        src, tgt = pooled_series(fb)
        src = shift_source(src, src.shape[-2] // 2)
        return torch.ops.te.transfer_entropy(src.view(torch.bool), tgt.view(torch.bool), fb.k,
                                             fb.l, fb.delay, None)
    if fb.estimator == "analytic" and fb.pairs is None:  # the window keeps the counts
        counts = pooled_counts(fb)
        return (torch.ops.te.te_from_counts(counts, fb.k, fb.l)
                - analytic_bias(counts, fb.k, fb.l)).clamp_(min=0.0)
    src, tgt = pooled_series(fb)
    if fb.estimator == "analytic":
        counts = torch.ops.te.joint_counts(src, tgt, fb.k, fb.l, fb.delay, None)
        te = (torch.ops.te.te_from_counts(counts, fb.k, fb.l)
              - analytic_bias(counts, fb.k, fb.l)).clamp_(min=0.0)
        values = te[fb.pairs[:, 0], fb.pairs[:, 1]]
    else:
        # A fresh, reproducible set of permutations at each refresh (resumes exactly: the
        # step count is part of the state).
        res = significance(src, tgt, surrogates=fb.surrogates, k=fb.k, l=fb.l, delay=fb.delay,
                           pairs=fb.pairs, seed=surrogate_seed(fb.seed, fb.steps))
        values = res.effective.clamp(min=0.0)
        fb.p_values = res.p_value  # [I, J], or [P] over fb.pairs: for diagnostics
        if fb.pairs is None:
            return values
    te = torch.zeros(fb.window.num_source, fb.window.num_target, dtype=torch.float64,
                     device=values.device)
    te[fb.pairs[:, 0], fb.pairs[:, 1]] = values
    return te


def surrogate_seed(seed: int, steps: int) -> int:
    """The seed of the surrogates drawn at the refresh after ``steps`` steps of a TEFeedback
    seeded ``seed``: distinct per refresh, the same on resume."""
    return (seed * 1_000_003 + steps) % (2 ** 63)
