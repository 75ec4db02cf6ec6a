"""End-to-end benchmarks: a training step with and without TE feedback, and the sliding window.

- ``train_step[usps,batch=64]``: forward, loss, backward and SGD step of the paper's USPS CNN
  on the CPU; "plain", "te" (the preset's paper settings) and "te_subset" (pair_fraction=0.1).
  The window is filled before timing, so every timed step computes TE.
- ``window_step[I=144,J=10,batch=64]``: StreamingJointCounts.append of one batch, then
  te_from_counts, for windows 512..4096; the cost should not grow with the window.

Both skip, with the reason, until te_ext.experiments.models / TEFeedback / StreamingJointCounts exist.
"""

from __future__ import annotations

import pytest
import torch

import workloads

TRAIN_GROUP = f"train_step[usps,batch={workloads.BATCH}]"
WINDOW_GROUP = (f"window_step[I={workloads.WINDOW_SOURCES},J={workloads.WINDOW_TARGETS},"
                f"batch={workloads.BATCH}]")


@pytest.mark.parametrize("variant", ["plain", "te", "te_subset"])
def test_train_step(measure, variant):
    reason = workloads.training_available()
    if reason:
        pytest.skip(reason)
    step = workloads.TrainingStep(variant)
    try:
        if step.feedback is not None:
            # The warm-up filled the window: TE must exist now, or the timing would be of a no-op.
            assert isinstance(step.feedback.te, torch.Tensor), "TEFeedback.te is unset after warm-up"
        measure(step, group=TRAIN_GROUP, role="baseline" if variant == "plain" else "ours",
                label=variant, te_kwargs={k: repr(v) for k, v in step.te_kwargs.items()})
    finally:
        step.close()


def _window_step(window):
    reason = workloads.streaming_available()
    if reason:
        pytest.skip(reason)
    return workloads.WindowStep(window)


@pytest.mark.parametrize("window", workloads.WINDOWS)
def test_window_step(measure, window):
    step = _window_step(window)
    assert step.stream.full
    measure(step, group=WINDOW_GROUP, role="baseline" if window == workloads.WINDOWS[0] else "ours",
            label=f"window={window}", window=window, nbytes=int(step.stream.nbytes),
            series="streamed: append + te_from_counts")


@pytest.mark.parametrize("window", workloads.WINDOWS)
def test_window_recount(measure, window):
    """For the plot only: what the step would cost if the window were recounted every step."""
    step = _window_step(window)
    if not hasattr(step.stream, "window_series"):
        pytest.skip("StreamingJointCounts has no window_series()")
    source, target = (s.bool() for s in step.stream.window_series())
    import te_ext

    measure(lambda: te_ext.te_from_counts(te_ext.joint_counts(source, target)),
            group=WINDOW_GROUP.replace("window_step", "window_recount"), role="baseline",
            label=f"recount window={window}", window=window,
            series="recounted: joint_counts over the window + te_from_counts")
