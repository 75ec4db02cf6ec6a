"""Transfer-entropy feedback in the weight update of an ``nn.Linear`` (Moldovan, Caţaron &
Andonie, *Entropy* 2021 23(9):1218): the method that the op library exists for."""

from __future__ import annotations

import numbers
import time
from typing import Any, Callable, Dict, Optional, Union

import torch
from torch import Tensor, nn

from ._checks import check_int, check_window
from ._ops import transfer_entropy_pairs
from .feedback_measures import check_estimator, check_measure, estimate, feedback_config
from .window import StreamingJointCounts

__all__ = ["TEFeedback"]

_TRANSFORMS: Dict[str, Callable[[Tensor], Tensor]] = {
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "sigmoid": torch.sigmoid,
}
_RULES = ("paper", "authors_code")
# On a GPU the window records bad input values on the device; every this many steps a
# non-blocking copy of that record is started and the previous one checked (StreamingJointCounts
# .poll). Every step would add a copy and an event record to each step's host cost.
_POLL_EVERY = 16


def _check_threshold(name: str, value: Any) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if value != value:
        raise ValueError(f"{name} must not be NaN")
    return float(value)


def _distributed_world() -> int:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class TEFeedback:
    r"""Modulates the weight update of ``linear`` by transfer entropy between its two layers.

    Each training sample is one time step. The source series are the layer's inputs
    (after their activation), binarised as ``value > source_threshold``; the target series
    are its outputs after ``target_transform`` (e.g. softmax for a classifier), binarised as
    ``value > target_threshold`` (the paper's threshold *g*). Samples are appended in the
    order training sees them, history runs across mini-batches, and the window keeps the
    last ``window`` samples (the paper's *u*). Every ``every`` training steps, once the
    window is full, the TE matrix ``T[i, j] = TE(source i -> target j)`` (bits; history
    ``k``, ``l``, ``delay`` as in :func:`te_ext.transfer_entropy`) is recomputed from the
    window's counts, which are kept up to date incrementally in O(batch) a step.

    Rules:

    * ``rule="paper"`` (default): before the optimizer step, the gradient of each connecting
      weight is scaled, :math:`\nabla W_{ji} \leftarrow \nabla W_{ji}\,(1 + T_{ij})`. It is a
      tensor hook on ``linear.weight``, so any optimizer (SGD with momentum and weight decay,
      Adam) and AMP see the scaled gradient.
    * ``rule="authors_code"``: the update of the authors' public code, kept for comparison.
      The source is the layer's output logits and the target their softmax (so I = J). At
      each refresh :math:`D = \mathrm{clip}(T_{prev} - T_{now})` (entries below 1e-8 become 0,
      above 10 become 1), and before the next forward pass
      :math:`W \leftarrow (\mathrm{Id} - D)^\top W`, i.e.
      :math:`W_{j,:} \leftarrow W_{j,:} - \sum_i D_{ij} W_{i,:}`. The first refresh has no
      :math:`T_{prev}` and changes nothing. Use it on the last Linear (the classifier).

    ``estimator``: ``"plugin"`` (default) uses the plug-in TE; ``"analytic"`` subtracts its
    first-order bias (:func:`te_ext.stats.analytic_bias`) and clips at 0; ``"effective"``
    uses :func:`te_ext.significance`'s ``effective`` TE (TE minus the mean of ``surrogates``
    permutation surrogates, fresh ones each refresh) clipped at 0. Cost per refresh:
    ``"analytic"`` about one ``te_from_counts`` (plus ``joint_counts`` over the window when
    ``pair_fraction < 1``); ``"effective"`` about ``surrogates + 1`` ``transfer_entropy``
    calls over the window, since the surrogates need the window's series, not its counts.

    ``measure``: what fills the slot, ``"te"`` (default) or one of the paper's ablations,
    ``"mi"`` (mutual information of the same binary series), ``"phi"`` (their absolute φ
    correlation) and ``"te_shifted"`` (TE of the source circularly shifted by half the window:
    the same marginals, no timing); see :mod:`te_ext.feedback_measures`.

    ``pair_fraction < 1`` computes TE only for a seeded random subset of pairs, with
    :func:`te_ext.transfer_entropy_pairs` over the window at each refresh (the paper's
    overhead/accuracy trade-off); the other pairs get T = 0.

    Under ``torch.distributed`` every rank's window is a replicate: the integer counts (or,
    with ``pair_fraction < 1``, the windows) are pooled across ranks before TE, so every
    rank applies the same T. A training step is a forward pass of ``linear`` in train mode
    with grad enabled; only those are recorded.

    Attributes:
        te: float32 ``[in_features, out_features]`` on the layer's device (``[out, out]`` for
            ``authors_code``), ``None`` until the window first fills. With the paper rule and
            the plug-in estimator it is one buffer rewritten in place at every refresh (clone
            it to keep a snapshot).
        refreshes: how many times T has been recomputed.
        seconds: wall seconds spent in the hooks so far (CUDA work is asynchronous).
        steps: training steps recorded.
    """

    def __init__(self, linear: nn.Linear, *, window: int = 512, every: int = 1,
                 source_threshold: float = 0.0, target_threshold: float = 0.5,
                 target_transform: Union[None, str, Callable[[Tensor], Tensor]] = None,
                 rule: str = "paper", pair_fraction: float = 1.0, k: int = 1, l: int = 1,
                 delay: int = 1, seed: int = 0, estimator: str = "plugin",
                 surrogates: int = 16, measure: str = "te") -> None:
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        if rule not in _RULES:
            raise ValueError(f"rule must be one of {_RULES}, got {rule!r}")
        if isinstance(target_transform, str):
            if target_transform not in _TRANSFORMS:
                raise ValueError(f"target_transform must be None, a callable or one of "
                                 f"{tuple(_TRANSFORMS)}, got {target_transform!r}")
            transform = _TRANSFORMS[target_transform]
        elif target_transform is None or callable(target_transform):
            transform = target_transform
        else:
            raise TypeError(f"target_transform must be None, a str or a callable, got "
                            f"{type(target_transform).__name__}")
        if rule == "authors_code":
            if target_transform not in (None, "softmax"):
                raise ValueError("rule='authors_code' takes the softmax of the layer's logits as "
                                 f"target; target_transform must be None or 'softmax', got {target_transform!r}")
            transform = _TRANSFORMS["softmax"]
        if not isinstance(pair_fraction, numbers.Real) or isinstance(pair_fraction, bool):
            raise TypeError(f"pair_fraction must be a number in (0, 1], got {type(pair_fraction).__name__}")
        if not 0.0 < float(pair_fraction) <= 1.0:
            raise ValueError(f"pair_fraction must be in (0, 1], got {pair_fraction}")
        check_int("every", every, 1)
        check_int("seed", seed, 0)
        n_src = linear.out_features if rule == "authors_code" else linear.in_features
        n_tgt = linear.out_features
        # k, l, delay, window: bounded as the ops bound them, and the window's state must fit
        # in memory, before StreamingJointCounts allocates it.
        check_window("TEFeedback", n_src, n_tgt, window, k, l, delay, linear.weight.device,
                     float(pair_fraction) == 1.0)

        self.linear, self.rule, self.every, self.seed = linear, rule, every, seed
        self.estimator, self.surrogates = check_estimator(estimator, surrogates)
        self.measure = check_measure(measure, estimator, float(pair_fraction))
        # The surrogate p-values of the last refresh ("effective" estimator only), else None.
        self.p_values: Optional[Tensor] = None
        self.window_size, self.k, self.l, self.delay = window, k, l, delay
        self.source_threshold = _check_threshold("source_threshold", source_threshold)
        self.target_threshold = _check_threshold("target_threshold", target_threshold)
        self.target_transform, self._transform = target_transform, transform
        self.pair_fraction = float(pair_fraction)
        weight = linear.weight
        self.window = StreamingJointCounts(n_src, n_tgt, window, k=k, l=l, delay=delay,
                                           device=weight.device,
                                           track_counts=self.pair_fraction == 1.0)
        self.pairs: Optional[Tensor] = None
        if self.pair_fraction < 1.0:
            g = torch.Generator().manual_seed(seed)
            total = n_src * n_tgt
            chosen = torch.randperm(total, generator=g)[:max(1, round(self.pair_fraction * total))]
            self.pairs = torch.stack([chosen // n_tgt, chosen % n_tgt], 1).to(weight.device)

        self.te: Optional[Tensor] = None
        self.seconds = 0.0
        self.steps = 0
        self.refreshes = 0
        self._grad_scale: Optional[Tensor] = None  # (1 + T)^T, [out, in], the paper rule
        self._pending_mix: Optional[Tensor] = None  # D of authors_code, applied before forward
        self._handles = [linear.register_forward_hook(self._on_forward)]
        if rule == "paper":
            self._handles.append(weight.register_hook(self._on_grad))
        else:
            self._handles.append(linear.register_forward_pre_hook(self._on_forward_pre))

    # ---- hooks ---------------------------------------------------------------------------
    # The hooks keep Python-side state (the step, the window's position), so under
    # torch.compile they run eagerly, as graph breaks, rather than being traced.
    @torch.compiler.disable
    def _on_forward(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        if not (module.training and torch.is_grad_enabled()):
            return
        t0 = time.perf_counter()
        with torch.no_grad():
            out = output.detach()
            src = out if self.rule == "authors_code" else inputs[0].detach()
            tgt = self._transform(out) if self._transform is not None else out
            src = src.reshape(-1, src.shape[-1])
            tgt = tgt.reshape(-1, tgt.shape[-1])
            self.window.append(src, tgt, self.source_threshold, self.target_threshold)
            if self.steps % _POLL_EVERY == 0:  # raises a bad value an earlier step recorded
                self.window.poll()             # (never syncs; a copy and an event each time)
            self.steps += 1
            if self.window.full and (self.steps - 1) % self.every == 0:
                self._refresh()
        self.seconds += time.perf_counter() - t0

    @torch.compiler.disable
    def _on_grad(self, grad: Tensor) -> Optional[Tensor]:
        if self._grad_scale is None:
            return None
        t0 = time.perf_counter()
        scale = self._grad_scale
        out = grad * (scale if scale.dtype == grad.dtype else scale.to(grad.dtype))
        self.seconds += time.perf_counter() - t0
        return out

    @torch.compiler.disable
    def _on_forward_pre(self, module: nn.Module, inputs: Any) -> None:
        if self._pending_mix is None:
            return
        with torch.no_grad():
            w = module.weight
            w.sub_((self._pending_mix.t() @ w.double()).to(w.dtype))
        self._pending_mix = None

    # ---- TE ------------------------------------------------------------------------------
    def _refresh(self) -> None:
        self.refreshes += 1
        default = self.estimator == "plugin" and self.measure == "te"
        if self.rule == "paper" and default and self.pairs is None:
            self._refresh_in_place()
            return
        te = (self._compute_te() if default else estimate(self)).to(torch.float32)
        if self.rule == "paper":
            self._grad_scale = (1.0 + te).t().contiguous()
        else:
            if self.te is not None:
                d = self.te.double() - te.double()
                d = torch.where(d < 1e-8, torch.zeros_like(d), d)
                self._pending_mix = torch.where(d > 10.0, torch.ones_like(d), d)
        self.te = te

    def _refresh_in_place(self) -> None:
        """The training default (paper rule, plug-in TE, all pairs) in one op call: T and the
        gradient scale (1 + T)^T written into buffers that live as long as the feedback."""
        counts = self.window.counts
        if _distributed_world() > 1:
            counts = counts.clone()
            torch.distributed.all_reduce(counts)
        if self.te is None or self._grad_scale is None:
            n_src, n_tgt = self.window.num_source, self.window.num_target
            self.te = torch.empty(n_src, n_tgt, dtype=torch.float32, device=counts.device)
            self._grad_scale = torch.empty(n_tgt, n_src, dtype=torch.float32, device=counts.device)
        # A recorded bad input value makes T NaN until check()/poll() raise (see _compute_te).
        torch.ops.te._window_refresh_(counts, self.window.status, self.k, self.l, self.te,
                                      self._grad_scale)

    def _compute_te(self) -> Tensor:
        world = _distributed_world()
        if self.pairs is None:
            counts = self.window.counts
            if world > 1:
                counts = counts.clone()
                torch.distributed.all_reduce(counts)
            # The window's own counts need no range check (te_from_counts' one sync on a GPU);
            # a recorded bad input value makes this T NaN until check()/poll() raise.
            return torch.ops.te._te_from_window_counts(counts, self.window.status, self.k, self.l)
        src, tgt = self.window.window_series()
        if world > 1:  # every rank's window is one replicate of a pooled [R, T, n] series
            gs = [torch.empty_like(src) for _ in range(world)]
            gt = [torch.empty_like(tgt) for _ in range(world)]
            torch.distributed.all_gather(gs, src.contiguous())
            torch.distributed.all_gather(gt, tgt.contiguous())
            src, tgt = torch.stack(gs), torch.stack(gt)
        # Bool views of the 0/1 bytes: binary by type, so the op skips its value check (a sync).
        src, tgt = src.view(torch.bool), tgt.view(torch.bool)
        values = transfer_entropy_pairs(src, tgt, self.pairs, self.k, self.l, self.delay)
        te = torch.zeros(self.window.num_source, self.window.num_target, dtype=torch.float64,
                         device=values.device)
        te[self.pairs[:, 0], self.pairs[:, 1]] = values
        return te

    def check(self) -> None:
        """Raises the ValueError of a bad input value that the window recorded without raising
        (on a GPU the step never syncs; see :meth:`StreamingJointCounts.check`). One sync."""
        self.window.check()

    # ---- lifecycle -----------------------------------------------------------------------
    def remove(self) -> None:
        """Detaches every hook; the layer then trains exactly as a plain one."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "TEFeedback":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def _config(self) -> Dict[str, Any]:
        return {"window": self.window_size, "every": self.every, "rule": self.rule,
                "source_threshold": self.source_threshold, "target_threshold": self.target_threshold,
                "pair_fraction": self.pair_fraction, "k": self.k, "l": self.l, "delay": self.delay,
                "seed": self.seed, **feedback_config(self)}

    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to resume exactly: the window, its counts, T and the step."""
        clone = lambda t: None if t is None else t.detach().clone()  # noqa: E731
        return {"config": self._config(), "window": self.window.state_dict(), "steps": self.steps,
                "seconds": self.seconds, "refreshes": self.refreshes, "te": clone(self.te), "grad_scale": clone(self._grad_scale),
                "pending_mix": clone(self._pending_mix)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state["config"] != self._config():
            raise ValueError(f"TEFeedback state was saved with {state['config']}, "
                             f"this one is configured as {self._config()}")
        dev = self.linear.weight.device
        move = lambda t: None if t is None else t.to(dev)  # noqa: E731
        self.window.load_state_dict(state["window"])
        self.steps, self.seconds = int(state["steps"]), float(state["seconds"])
        # Copies: a refresh rewrites te and the gradient scale in place, never the caller's state.
        own = lambda t: None if t is None else t.to(dev, copy=True)  # noqa: E731
        self.te, self._grad_scale = own(state["te"]), own(state["grad_scale"])
        self.refreshes = int(state.get("refreshes", 0))
        self._pending_mix = move(state["pending_mix"])
