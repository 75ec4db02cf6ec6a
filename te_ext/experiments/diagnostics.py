"""What the TE feedback did during each epoch, for ``te_diagnostics.png``.

After every optimizer step of a TE arm, :class:`TEDiagnostics` looks at the T matrix that
step used (``TEFeedback.te``). Per epoch it records:

* ``te_median``, ``te_p99``: the median and 99th percentile of all pairs' T (bits) pooled
  over up to :data:`MAX_SNAPSHOTS` evenly spaced steps of the epoch;
* ``te_mean``: the mean T over pairs and all steps;
* ``grad_scale_mean``: the mean gradient scale ``1 + T`` over weights and steps (the
  ``paper`` rule only; ``authors_code`` mixes weights instead of scaling gradients);
* ``te_steps``: how many steps had a T (none until the window first fills);
* ``te_frac_significant``: the fraction of pairs whose T beats its surrogates at
  ``p <= te_significance_alpha``, averaged over steps -- only when the feedback exposes
  per-pair p-values as ``p_values`` (the statistics work's estimators); absent otherwise, and
  then not plotted. The level is ``max(0.05, 1 / (S + 1))`` for ``S`` surrogates: a
  permutation p-value is at least ``1 / (S + 1)``, so with the default 16 surrogates
  ``p < 0.05`` can never happen (the first FashionMNIST runs recorded exactly that, a
  fraction that was 0 by construction, as ``te_frac_p05``), and the level becomes 1/17:
  the pairs whose T beat every surrogate.

All are ``None`` for an epoch in which T never existed.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import torch

__all__ = ["TEDiagnostics", "DIAGNOSTIC_KEYS", "MAX_SNAPSHOTS"]

MAX_SNAPSHOTS = 100  # pooled T snapshots per epoch: bounds memory and the quantile's cost
DIAGNOSTIC_KEYS = ("te_median", "te_p99", "te_mean", "grad_scale_mean", "te_steps",
                   "te_frac_significant", "te_significance_alpha")


def significance_alpha(surrogates) -> float:
    """The level ``te_frac_significant`` counts at: 0.05, or the smallest p-value that
    ``surrogates`` permutations can give where that is larger."""
    if isinstance(surrogates, int) and surrogates > 0:
        return max(0.05, 1.0 / (surrogates + 1))
    return 0.05


class TEDiagnostics:
    def __init__(self, feedback) -> None:
        self.fb = feedback
        self.start_epoch(1)

    def start_epoch(self, steps: int) -> None:
        self._stride = max(1, -(-int(steps) // MAX_SNAPSHOTS))
        self._step = 0
        self._snapshots: List[torch.Tensor] = []
        self._means: List[torch.Tensor] = []
        self._frac: List[torch.Tensor] = []

    @torch.no_grad()
    def observe(self) -> None:
        """Call after each optimizer step."""
        te = self.fb.te
        step, self._step = self._step, self._step + 1
        if te is None:
            return
        te = te.detach()
        self._means.append(te.double().mean())  # stays on te's device: no sync each step
        if step % self._stride == 0:
            self._snapshots.append(te.flatten().float().clone())
        p = getattr(self.fb, "p_values", None)
        if isinstance(p, torch.Tensor) and p.numel():
            alpha = significance_alpha(getattr(self.fb, "surrogates", None))
            # A relative tolerance: (1 + m) / (S + 1) computed in float64 may land an ulp off.
            self._frac.append((p.detach() <= alpha * (1 + 1e-9)).double().mean())
            self._alpha = alpha

    def end_epoch(self) -> Dict[str, Optional[float]]:
        out: Dict[str, Optional[float]] = {k: None for k in DIAGNOSTIC_KEYS[:4]}
        out["te_steps"] = len(self._means)
        if self._snapshots:
            pooled = torch.cat(self._snapshots).cpu().double()
            q = torch.quantile(pooled, torch.tensor([0.5, 0.99], dtype=torch.float64))
            mean = float(torch.stack(self._means).mean())
            out.update(te_median=float(q[0]), te_p99=float(q[1]), te_mean=mean)
            if getattr(self.fb, "rule", "paper") == "paper":
                out["grad_scale_mean"] = 1.0 + mean  # mean of (1 + T) over weights
        if self._frac:
            out["te_frac_significant"] = float(torch.stack(self._frac).mean())
            out["te_significance_alpha"] = self._alpha
        self.start_epoch(1)
        return out
