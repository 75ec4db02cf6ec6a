"""Fuzz the te-train command line: random bad flag values and combinations.

Each invocation runs in its own child process, with a timeout and an address-space cap,
and must either succeed (exit 0, or 3 when a run stopped on a non-finite loss, which a huge
--lr is allowed to cause) or refuse with exit status 2 and exactly one error line on stderr
(``te-train: error: ...``; an argparse error may add its one usage line). A traceback, any
other exit status, a signal or a timeout fails.

The children are forked from one worker process that has imported te_ext once
(tests/te_train_worker.py), so a few dozen invocations cost seconds, not an interpreter start
each. Each child's address space is capped at 4 GiB above the worker's (on machines
without CUDA).

Profiles: the default is short and deterministic (CI); ``TE_FUZZ_PROFILE=long`` runs many
more examples. Valid values are kept cheap (the 600-sample ``synthetic`` set, one epoch,
small windows) so that a successful run takes about a second.
"""

from __future__ import annotations

import os

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from te_train_worker import te_train_worker  # noqa: E402

LONG = os.environ.get("TE_FUZZ_PROFILE", "") == "long"
EXAMPLES = 400 if LONG else 30
TIMEOUT_S = 120  # generous: a loaded CI machine runs a 1-second epoch slowly
# The children's address space: 4 GiB above the worker's. Not where CUDA is available: its
# initialisation reserves far more virtual memory than that (--device cuda is fuzzed too).
ADDRESS_SPACE = None if torch.cuda.is_available() else 4 << 30
# The te arm by default, so that the TE settings are used, not only parsed.
BASE = ["--dataset", "synthetic", "--arms", "te", "--epochs", "1", "--window", "64", "--quiet"]


def _invoke(argv, cwd, timeout=TIMEOUT_S, python=None):
    return te_train_worker().run(argv, cwd, timeout=timeout, python=python,
                                 extra_address_space=ADDRESS_SPACE)


# -- strategies -----------------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=12)
_BAD_NUMBERS = ["", "abc", "1.5.2", "0x10", "--", "1e", "٣", " ", "None", "[1]", "2**63"]
_INT_EXTREMES = ["0", "-1", "-9223372036854775809", "9223372036854775808", "1" + "0" * 30,
                 "100000000000000", "2147483648"]
_FLOAT_EXTREMES = ["nan", "inf", "-inf", "-0.0", "0", "-1", "1e308", "1e-320", "1e999", "2"]


# Three of five branches parse as numbers, so most examples get past argparse's type check
# to the range, size and consistency checks behind it.
def _int_flag(valid):
    return st.one_of(st.sampled_from(valid), st.sampled_from(_INT_EXTREMES),
                     st.integers(-10**6, 0).map(str), st.sampled_from(_BAD_NUMBERS), _TEXT)


def _float_flag(valid):
    return st.one_of(st.sampled_from(valid), st.sampled_from(_FLOAT_EXTREMES),
                     st.floats(allow_nan=True, allow_infinity=True).map(repr),
                     st.sampled_from(_BAD_NUMBERS), _TEXT)


# Valid values stay cheap: --epochs/--seeds/--threads are small or invalid, never large.
FLAGS = {
    "--dataset": st.sampled_from(["synthetic", "digits", "cifar10", "imagenet", "", "SYNTHETIC"]),
    "--model": st.sampled_from(["digits", "usps", "cifar10", "resnet", ""]),
    "--arms": st.sampled_from(["baseline", "te", "baseline,te", "te,te", "", ",", "x",
                               "baseline,,te", " te "]),
    "--epochs": _int_flag(["1", "2"]),
    "--seeds": _int_flag(["1", "2"]),
    "--threads": _int_flag(["1", "2"]),
    "--batch-size": _int_flag(["1000", "64", "31"]),
    "--window": _int_flag(["2", "3", "64", "100000"]),
    "--every": _int_flag(["1", "5", "1000000000000"]),
    "--target-acc": _float_flag(["0.5", "1"]),
    "--lr": _float_flag(["0.1", "0.01", "1e30"]),
    "--momentum": _float_flag(["0", "0.5", "0.999"]),
    "--weight-decay": _float_flag(["0", "0.001"]),
    "--source-threshold": _float_flag(["0", "0.5"]),
    "--target-threshold": _float_flag(["0.5", "0.1"]),
    "--pair-fraction": _float_flag(["0.5", "1", "0.01"]),
    "--target-transform": st.sampled_from(["none", "softmax", "sigmoid", "tanh", ""]),
    "--rule": st.sampled_from(["paper", "authors_code", "other", ""]),
    "--device": st.sampled_from(["cpu", "cuda", "tpu", ""]),
    # "corrupt" holds a corrupted checkpoint (refused under --resume, overwritten without).
    "--out": st.sampled_from(["/proc/x", "/dev/null/x", "a-file/x", "a-file", "out", "",
                              "corrupt"]),
}
SWITCHES = ["--resume", "--quiet", "--bogus", "-z", "stray", "--epochs", "--help-me"]


@st.composite
def invocations(draw):
    flags = draw(st.lists(st.sampled_from(sorted(FLAGS)), min_size=1, max_size=3, unique=True))
    argv = list(BASE)
    for flag in flags:
        value = draw(FLAGS[flag])
        # "--flag=value" also passes values that start with "-" as values.
        argv += [f"{flag}={value}"] if draw(st.booleans()) else [flag, value]
    if draw(st.integers(0, 2)) == 0:
        argv.append(draw(st.sampled_from(SWITCHES)))
    return argv


@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(argv=invocations())
def test_cli_refuses_cleanly_or_runs(tmp_path_factory, argv):
    cwd = str(tmp_path_factory.mktemp("cli"))  # relative --out and --data-dir land here
    with open(os.path.join(cwd, "a-file"), "w"):
        pass
    os.makedirs(os.path.join(cwd, "corrupt", "checkpoints"))
    with open(os.path.join(cwd, "corrupt", "checkpoints", "te-seed0.pt"), "wb") as f:
        f.write(b"TE-TRAIN-CHECKPOINT 1\nsha256 " + b"0" * 64 + b"\n" + os.urandom(100))
    res = _invoke(argv, cwd)
    err = res.stderr
    assert not res.timed_out, f"te-train {argv} ran past {TIMEOUT_S} s"
    assert res.signal is None, f"te-train {argv} died of signal {res.signal}:\n{err}"
    assert "Traceback" not in err, f"te-train {argv}:\n{err}"
    rc = res.rc
    if rc == 2:
        lines = err.strip().splitlines()
        errors = [ln for ln in lines if ln.startswith("te-train: error: ")]
        others = [ln for ln in lines if not ln.startswith("te-train: error: ")]
        assert len(errors) == 1, f"te-train {argv}:\n{err}"
        assert others in ([], ["usage: te-train --dataset NAME [options]"]), \
            f"te-train {argv}:\n{err}"
    else:
        assert rc in (0, 3), f"te-train {argv} exited {rc}:\n{err}"


def test_worker_tells_outcomes_apart(tmp_path):
    """The harness itself: a refusal, a success, a traceback, a signal and a hang are each
    reported as such (so the fuzz test above can fail)."""
    cwd = str(tmp_path)
    bad = _invoke(BASE + ["--epochs", "0"], cwd)
    assert bad.rc == 2 and bad.stderr.count("te-train: error:") == 1
    good = _invoke(BASE + ["--out", "ok"], cwd)
    assert good.rc == 0 and os.path.exists(os.path.join(cwd, "ok", "results.json"))
    crash = _invoke(BASE, cwd, python="raise RuntimeError('boom')")
    assert crash.rc == 1 and "Traceback" in crash.stderr
    died = _invoke(BASE, cwd, python="os.kill(os.getpid(), signal.SIGSEGV)")
    assert died.signal == 11
    hung = _invoke(BASE, cwd, timeout=1, python="time.sleep(60)")
    assert hung.timed_out
