"""The shapes, inputs and closures that bench/ times; shared by the pytest benchmarks and report.py.

Everything here is deterministic given the seed, so two runs time the same work.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

import baselines

SEED = 0
BATCH = 64
# How many pairs PyInform is timed on; its per-pair cost does not depend on which pairs.
PYINFORM_SAMPLE = 128
PAIR_FRACTION = 0.1


@dataclass(frozen=True)
class KernelCase:
    I: int
    J: int
    T: int
    k: int = 1
    l: int = 1

    @property
    def id(self) -> str:
        return f"I{self.I}-J{self.J}-T{self.T}-k{self.k}-l{self.l}"

    def group(self, op: str) -> str:
        return f"{op}[I={self.I},J={self.J},T={self.T},k={self.k},l={self.l}]"

    @property
    def gemm_shape(self) -> Tuple[int, int, int]:
        """(rows, T, cols) of the dense fp32 formulation of these counts.

        One stream per non-zero source state against one per non-zero (ynext, ypast) state;
        the zero states follow from marginals. For k = l = 1 this is ``[I x T] @ [T x 3J]``.
        """
        return (self.I * ((1 << self.l) - 1), self.T,
                self.J * ((1 << (self.k + 1)) - 1))


def kernel_cases(full: bool) -> List[KernelCase]:
    """The issue's shapes at k = l = 1, and one k = 3, l = 2 case (all shapes with --full)."""
    cases = [KernelCase(120, 84, 1024), KernelCase(256, 256, 4096),
             KernelCase(1024, 1024, 1024), KernelCase(256, 256, 4096, k=3, l=2)]
    if full:
        cases += [KernelCase(120, 84, 1024, k=3, l=2), KernelCase(1024, 1024, 1024, k=3, l=2),
                  KernelCase(1024, 1024, 4096), KernelCase(2048, 2048, 2048)]
    return cases


def t_scan_cases(full: bool) -> List[KernelCase]:
    """Fixed 256 x 256 neurons, growing T: for the time-against-T plot."""
    lengths = [256, 1024, 4096, 16384] + ([65536] if full else [])
    return [KernelCase(256, 256, t) for t in lengths]


def pair_scan_cases(full: bool) -> List[KernelCase]:
    """Fixed T = 1024, growing I = J: for the time-against-I*J plot."""
    sizes = [64, 128, 256, 512, 1024] + ([2048, 4096] if full else [])
    return [KernelCase(n, n, 1024) for n in sizes]


class KernelInputs:
    """Bool series for one case, and every baseline's view of them, made once."""

    def __init__(self, case: KernelCase, seed: int = SEED):
        gen = torch.Generator().manual_seed(seed)
        self.case = case
        self.source = torch.rand(case.T, case.I, generator=gen) < 0.5
        self.target = torch.rand(case.T, case.J, generator=gen) < 0.5
        num_pairs = max(1, int(round(PAIR_FRACTION * case.I * case.J)))
        # A fixed random subset, sorted as a mask would enumerate it.
        flat = torch.randperm(case.I * case.J, generator=gen)[:num_pairs].sort().values
        self.pairs = torch.stack([flat // case.J, flat % case.J], dim=1)
        rows, t, cols = case.gemm_shape
        self.gemm_a = (torch.rand(rows, t, generator=gen) < 0.5).float()
        self.gemm_b = (torch.rand(t, cols, generator=gen) < 0.5).float()
        self.source_np = self.source.numpy()
        self.target_np = self.target.numpy()
        self.pairs_np = self.pairs.numpy()
        sample = torch.randperm(case.I * case.J, generator=gen)[:min(PYINFORM_SAMPLE, case.I * case.J)]
        self.pyinform_sample = [(int(p) // case.J, int(p) % case.J) for p in sample]
        self.pyinform_source = baselines.pyinform_rows(self.source_np)
        self.pyinform_target = baselines.pyinform_rows(self.target_np)

    @functools.cached_property
    def counts(self) -> torch.Tensor:
        import te_ext

        return te_ext.joint_counts(self.source, self.target, self.case.k, self.case.l)

    @functools.cached_property
    def counts_np(self) -> np.ndarray:
        return self.counts.numpy()


@functools.lru_cache(maxsize=2)
def kernel_inputs(case: KernelCase) -> KernelInputs:
    # Two cases at most: the benchmarks run case by case, and the big cases are large.
    return KernelInputs(case)


def gemm_floor(inputs: KernelInputs) -> Callable[[], Any]:
    a, b = inputs.gemm_a, inputs.gemm_b
    return lambda: torch.matmul(a, b)


def pyinform_sample(inputs: KernelInputs) -> Tuple[Callable[[], Any], float]:
    """PyInform over the sampled pairs, and the factor that extrapolates it to all I*J pairs."""
    c = inputs.case
    fn = functools.partial(baselines.pyinform_pairs, inputs.pyinform_source,
                           inputs.pyinform_target, inputs.pyinform_sample, c.k)
    return fn, c.I * c.J / len(inputs.pyinform_sample)


# --------------------------------------------------------------------------- training


def training_available() -> Optional[str]:
    """None when the models and TE feedback exist; otherwise why the training benchmarks skip."""
    try:
        import te_ext
        from te_ext.experiments.models import PRESETS, build_model  # noqa: F401
    except Exception as exc:  # noqa: BLE001  (any import failure means: not landed yet)
        return f"te_ext.experiments.models is not available yet ({type(exc).__name__}: {exc})"
    if not hasattr(te_ext, "TEFeedback"):
        return "te_ext.TEFeedback is not available yet"
    return None


def streaming_available() -> Optional[str]:
    try:
        import te_ext
    except Exception as exc:  # noqa: BLE001
        return f"te_ext does not import ({type(exc).__name__}: {exc})"
    if not hasattr(te_ext, "StreamingJointCounts"):
        return "te_ext.StreamingJointCounts is not available yet"
    return None


class TrainingStep:
    """One SGD step of the paper's USPS CNN at batch 64 on a fixed batch, optionally with TE feedback.

    ``variant`` is "plain", "te" (the preset's paper settings) or "te_subset" (the same with
    ``pair_fraction=0.1``). The constructor runs enough steps to fill the TE window, so every
    timed step computes TE.
    """

    def __init__(self, variant: str, seed: int = SEED):
        import te_ext
        from te_ext.experiments.models import PRESETS, build_model

        torch.manual_seed(seed)
        preset = PRESETS["usps"]
        self.model = build_model("usps")
        self.model.train()
        self.feedback = None
        self.te_kwargs: Dict[str, Any] = {}
        if variant != "plain":
            self.te_kwargs = dict(preset.te_kwargs())
            if variant == "te_subset":
                self.te_kwargs["pair_fraction"] = PAIR_FRACTION
            elif variant != "te":
                raise ValueError(f"TrainingStep: unknown variant {variant!r}")
            self.feedback = te_ext.TEFeedback(self.model.te_layer, **self.te_kwargs)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=float(preset.lr),
                                         momentum=float(getattr(preset, "momentum", 0.0)),
                                         weight_decay=float(getattr(preset, "weight_decay", 0.0)))
        gen = torch.Generator().manual_seed(seed)
        self.inputs = torch.rand(BATCH, 1, 16, 16, generator=gen)
        self.labels = torch.randint(0, 10, (BATCH,), generator=gen)
        window = int(self.te_kwargs.get("window", 0))
        for _ in range(window // BATCH + 2):
            self()

    def __call__(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(self.model(self.inputs), self.labels)
        loss.backward()
        self.optimizer.step()

    def close(self) -> None:
        if self.feedback is not None:
            self.feedback.remove()


# The feedback layer of the USPS CNN: its flattened input and its 10 classes.
WINDOW_SOURCES = 144
WINDOW_TARGETS = 10
WINDOWS = (512, 1024, 2048, 4096)


class WindowStep:
    """The TE feedback's per-step work: slide a batch of 64 into the window, then TE from counts."""

    def __init__(self, window: int, seed: int = SEED, source: int = WINDOW_SOURCES,
                 target: int = WINDOW_TARGETS, batch: int = BATCH):
        import te_ext

        self.window = window
        self.stream = te_ext.StreamingJointCounts(source, target, window)
        gen = torch.Generator().manual_seed(seed)
        # A few distinct batches, cycled, so the window really changes every step.
        self.batches = [(torch.randn(batch, source, generator=gen),
                         torch.rand(batch, target, generator=gen)) for _ in range(8)]
        self.turn = 0
        while not self.stream.full:
            self()
        self()

    def __call__(self) -> torch.Tensor:
        import te_ext

        src, tgt = self.batches[self.turn % len(self.batches)]
        self.turn += 1
        self.stream.append(src, tgt, source_threshold=0.0, target_threshold=0.5)
        return te_ext.te_from_counts(self.stream.counts)


def state_tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor an object holds directly (our own accounting, to check .nbytes)."""
    seen, total = set(), 0
    for value in vars(obj).values():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, torch.Tensor) and id(item) not in seen:
                seen.add(id(item))
                total += item.untyped_storage().nbytes()
    return total


def _read_status(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_extra_rss(fn: Callable[[], Any], repeats: int = 5) -> Optional[int]:
    """Largest rise of peak RSS over the RSS before a call of ``fn``, in bytes (Linux only).

    Writing 5 to /proc/self/clear_refs resets the peak (VmHWM); memory the allocator already
    holds is not counted, which is the point: this is what one more step costs.
    """
    worst = 0
    for _ in range(repeats):
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            return None
        before = _read_status("VmRSS")
        fn()
        peak = _read_status("VmHWM")
        if before is None or peak is None:
            return None
        worst = max(worst, peak - before)
    return worst


def allocated_per_step(fn: Callable[[], Any]) -> Optional[int]:
    """Bytes that one call of ``fn`` allocates on the CPU, summed over ops (torch profiler).

    A sum of allocations, so an upper bound of the step's peak transient memory. The
    profiler's start-up chatter on stderr (it probes for GPUs) is silenced.
    """
    from torch.profiler import ProfilerActivity, profile

    fn()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                fn()
    except Exception:  # noqa: BLE001  (a profiler that cannot run means: not measured)
        return None
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return int(sum(max(0, e.self_cpu_memory_usage) for e in prof.key_averages()))


def window_memory(window: int, source: int = WINDOW_SOURCES, target: int = WINDOW_TARGETS,
                  k: int = 1, l: int = 1) -> Dict[str, Any]:
    """The streaming state's size against the bound "window bits + counts"."""
    step = WindowStep(window, source=source, target=target)
    stream = step.stream
    reported = int(getattr(stream, "nbytes"))
    counted = state_tensor_bytes(stream)
    pairs = source * target
    bins = 1 << (k + l + 1)
    # The bound the issue sets: the window as bits, the int64 pair counts and int64 per-neuron
    # state counts; no float activations. Bits may be padded along time (64-bit words per
    # neuron) or along neurons (whole bytes per sample): allow the larger.
    window_bits = max(((window + 63) // 64) * 8 * (source + target),
                      window * ((source + 7) // 8 + (target + 7) // 8))
    counts_bytes = pairs * bins * 8 + (source * (1 << l) + target * (1 << (k + 1))) * 8
    bound = window_bits + counts_bytes
    return {
        "window": window, "source": source, "target": target,
        "nbytes": reported, "tensor_bytes": counted,
        "bound_bytes": bound, "nbytes_over_bound": reported / bound,
        "within_bound": reported <= bound,
        "peak_extra_rss_per_step": peak_extra_rss(step),
        "allocated_per_step": allocated_per_step(step),
    }
