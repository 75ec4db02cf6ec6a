"""The te-train CLI: outputs and their schema, exact resume, Ctrl-C, NaN losses, bad input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import types

import pytest
import torch

from te_ext.experiments import train
from te_ext.experiments.checkpoint import load_checkpoint
from te_ext.experiments.diagnostics import DIAGNOSTIC_KEYS
from state_equal import state_equal

EPOCH_KEYS = {"epoch", "train_loss", "test_acc", "seconds", "te_seconds"}
# Settings under which TE is nonzero from the first window on. With the presets' softmax
# target and g = 0.5, T stays 0 until some softmax output exceeds 0.5 (on digits, not in
# epoch 1), and the te arm then equals the baseline; sigmoid(logit) > 0.5 is logit > 0.
ACTIVE_TE = ["--target-transform", "sigmoid", "--window", "200"]


def _run(tmp_path, name, *args):
    out = str(tmp_path / name)
    return train.main(["--quiet", "--out", out, *args]), out


def _results(out):
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def _metrics(res):
    """Everything measured except wall-clock times."""
    return [(r["arm"], r["seed"], [(e["epoch"], e["train_loss"], e["test_acc"])
                                   for e in r["epochs"]]) for r in res["runs"]]


def test_synthetic_smoke_outputs_and_schema(tmp_path, capsys):
    rc, out = _run(tmp_path, "syn", "--dataset", "synthetic", "--arms", "baseline,te",
                   "--epochs", "2", "--seeds", "2", "--window", "64")
    assert rc == 0
    res = _results(out)
    assert set(res) == {"config", "runs", "summary"}
    cfg = res["config"]
    assert cfg["dataset"] == "synthetic" and cfg["model"] == "digits"
    assert cfg["arms"] == ["baseline", "te"] and cfg["seeds"] == [0, 1] and cfg["epochs"] == 2
    assert cfg["te"]["window"] == 64 and cfg["te"]["rule"] == "paper"
    assert sorted((r["arm"], r["seed"]) for r in res["runs"]) == [
        ("baseline", 0), ("baseline", 1), ("te", 0), ("te", 1)]
    for r in res["runs"]:
        assert set(r) == {"arm", "seed", "epochs"}
        assert [e["epoch"] for e in r["epochs"]] == [1, 2]
        for e in r["epochs"]:
            # TE arms also record the diagnostics of te_ext.experiments.diagnostics.
            extra = set(DIAGNOSTIC_KEYS[:5]) if r["arm"] == "te" else set()
            assert set(e) == EPOCH_KEYS | extra
            assert 0.0 <= e["test_acc"] <= 1.0 and e["seconds"] > 0 and e["train_loss"] > 0
            assert (e["te_seconds"] > 0) == (r["arm"] == "te")
    assert set(res["summary"]) == {"baseline", "te"}
    for arm, s in res["summary"].items():
        for key in ("epochs_to_target", "seconds_to_target"):
            assert {"mean", "std", "reached", "of"} <= set(s[key]) and s[key]["of"] == 2
        assert {"mean", "std"} <= set(s["final_test_acc"]) and s["seconds_per_epoch"]["mean"] > 0
    assert res["summary"]["baseline"]["time_per_epoch_ratio"] == 1.0
    assert res["summary"]["te"]["time_per_epoch_ratio"] > 0
    assert "vs_baseline" in res["summary"]["te"]
    with open(os.path.join(out, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {"arm", "seed", "epoch", "test_acc", "seconds"} <= set(rows[0])
    with open(os.path.join(out, "curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "| baseline |" in table and "| te |" in table and "epochs to 0.95" in table


def test_te_arm_equals_baseline_until_the_window_fills(tmp_path):
    """Same initial weights and data order per seed: with a window that never fills, the
    te arm must reproduce the baseline bit for bit; with TE active, it must not."""
    rc, out = _run(tmp_path, "never", "--dataset", "synthetic", "--epochs", "2",
                   "--window", "100000")
    assert rc == 0
    (_, _, base), (_, _, te) = _metrics(_results(out))
    assert base == te
    rc, out = _run(tmp_path, "active", "--dataset", "digits", "--epochs", "2", *ACTIVE_TE)
    assert rc == 0
    (_, _, base), (_, _, te) = _metrics(_results(out))
    assert base != te


def test_resume_is_bit_identical(tmp_path):
    # Momentum and weight decay give the optimizer a state that the resume must restore.
    args = ["--dataset", "digits", "--arms", "baseline,te", "--momentum", "0.5",
            "--weight-decay", "1e-4", *ACTIVE_TE]
    rc, full = _run(tmp_path, "full", *args, "--epochs", "3")
    assert rc == 0
    rc, part = _run(tmp_path, "part", *args, "--epochs", "2")
    assert rc == 0
    assert len(_results(part)["runs"][0]["epochs"]) == 2
    rc, part = _run(tmp_path, "part", *args, "--epochs", "3", "--resume")
    assert rc == 0
    assert _metrics(_results(part)) == _metrics(_results(full))
    for arm in ("baseline", "te"):
        a = load_checkpoint(os.path.join(full, "checkpoints", f"{arm}-seed0.pt"))
        b = load_checkpoint(os.path.join(part, "checkpoints", f"{arm}-seed0.pt"))
        assert a["epoch"] == b["epoch"] == 3
        for key in ("model", "optimizer", "te_feedback"):
            sa, sb = a[key], b[key]
            if key == "te_feedback" and sa is not None:  # its wall-clock total differs
                sa, sb = dict(sa, seconds=0), dict(sb, seconds=0)
            assert state_equal(sa, sb), (arm, key)
        if arm == "te":
            assert a["te_feedback"]["te"] is not None and float(a["te_feedback"]["te"].max()) > 0


def test_ctrl_c_keeps_a_valid_checkpoint_and_resume_finishes(tmp_path, monkeypatch, capsys):
    args = ["--dataset", "synthetic", "--arms", "te", "--window", "64"]
    rc, full = _run(tmp_path, "full", *args, "--epochs", "3")
    assert rc == 0
    evaluate = train._Runner._evaluate
    calls = []

    def interrupt_in_epoch_2(self, model, split):
        calls.append(1)
        if len(calls) == 2:  # epoch 2 trained but not yet checkpointed
            raise KeyboardInterrupt
        return evaluate(self, model, split)

    monkeypatch.setattr(train._Runner, "_evaluate", interrupt_in_epoch_2)
    rc, part = _run(tmp_path, "part", *args, "--epochs", "3")
    assert rc == train.EXIT_INTERRUPTED
    assert "--resume" in capsys.readouterr().err
    assert load_checkpoint(os.path.join(part, "checkpoints", "te-seed0.pt"))["epoch"] == 1
    assert len(_results(part)["runs"][0]["epochs"]) == 1
    assert not [f for f in os.listdir(os.path.join(part, "checkpoints")) if f.endswith(".tmp")]
    monkeypatch.setattr(train._Runner, "_evaluate", evaluate)
    rc, part = _run(tmp_path, "part", *args, "--epochs", "3", "--resume")
    assert rc == 0
    assert _metrics(_results(part)) == _metrics(_results(full))


def test_nan_loss_stops_the_run_and_keeps_what_was_measured(tmp_path, monkeypatch, capsys):
    steps = []

    def loss_goes_nan(logits, target):  # finite for the first 25 steps (epoch 1 has 19)
        steps.append(1)
        loss = torch.nn.functional.cross_entropy(logits, target)
        return loss * float("nan") if len(steps) > 25 else loss

    monkeypatch.setattr(train, "F", types.SimpleNamespace(cross_entropy=loss_goes_nan))
    rc, out = _run(tmp_path, "nan", "--dataset", "synthetic", "--arms", "baseline",
                   "--epochs", "3")
    assert rc == train.EXIT_NONFINITE
    err = capsys.readouterr().err
    assert "loss is nan at epoch 2" in err
    (run,) = _results(out)["runs"]
    assert [e["epoch"] for e in run["epochs"]] == [1] and "nan" in run["error"]
    assert load_checkpoint(os.path.join(out, "checkpoints", "baseline-seed0.pt"))["epoch"] == 1
    assert os.path.exists(os.path.join(out, "curves.png"))


def test_huge_learning_rate_gives_nonzero_exit(tmp_path, capsys):
    rc, out = _run(tmp_path, "lr", "--dataset", "synthetic", "--arms", "baseline,te",
                   "--epochs", "2", "--lr", "1e30")
    assert rc == train.EXIT_NONFINITE
    assert "run stopped" in capsys.readouterr().err
    runs = _results(out)["runs"]
    assert len(runs) == 2 and all(r.get("error") for r in runs)


def test_bad_arguments(tmp_path, capsys):
    for argv in (["--dataset", "digits", "--arms", "baseline,fancy"],
                 ["--dataset", "digits", "--epochs", "0"],
                 ["--dataset", "digits", "--lr", "-1"],
                 ["--dataset", "digits", "--pair-fraction", "1.5"],
                 ["--dataset", "digits", "--model", "usps"]):
        with pytest.raises(SystemExit) as info:
            train.main(["--quiet", "--out", str(tmp_path / "bad"), *argv])
        assert info.value.code == 2, argv
    rc = train.main(["--quiet", "--dataset", "cifar10", "--data-dir", str(tmp_path / "none"),
                     "--out", str(tmp_path / "c")])
    assert rc == 2 and "--download" in capsys.readouterr().err


def test_resume_refuses_another_configuration(tmp_path, capsys):
    rc, out = _run(tmp_path, "a", "--dataset", "synthetic", "--arms", "baseline", "--epochs", "1")
    assert rc == 0
    rc, _ = _run(tmp_path, "a", "--dataset", "synthetic", "--arms", "baseline", "--epochs", "2",
                 "--lr", "0.05", "--resume")
    assert rc == 2 and "--resume" in capsys.readouterr().err


def test_module_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "te_ext.experiments.train", "--dataset", "synthetic",
                           "--arms", "baseline", "--epochs", "1", "--quiet",
                           "--out", str(tmp_path / "m")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| baseline |" in proc.stdout


def _error_lines(capsys):
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("argv,flag", [
    (["--dataset", "digits", "--epochs", "x"], "--epochs"),
    (["--dataset", "imagenet"], "--dataset"),
    ([], "--dataset"),
    (["--dataset", "digits", "--bogus"], "--bogus"),
    (["--dataset", "digits", "--epochs", "0"], "--epochs"),
    (["--dataset", "digits", "--seeds", "1000000000000"], "--seeds"),
    (["--dataset", "digits", "--threads", "1000000"], "--threads"),
])
def test_usage_errors_are_one_usage_line_and_one_error_line(tmp_path, capsys, argv, flag):
    with pytest.raises(SystemExit) as info:
        train.main(["--quiet", "--out", str(tmp_path / "u"), *argv])
    assert info.value.code == 2
    usage, error = _error_lines(capsys)  # exactly two lines, not argparse's usage block
    assert usage == "usage: te-train --dataset NAME [options]"
    assert error.startswith("te-train: error: ") and flag in error
    assert error.endswith("(see te-train --help)")


def test_help_still_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as info:
        train.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert all(f in text for f in ("--window", "--pair-fraction", "--resume", "--threads"))


def test_oversized_window_is_refused_naming_the_flag(tmp_path, capsys):
    out = tmp_path / "w"
    rc = train.main(["--quiet", "--dataset", "synthetic", "--window", "100000000000000",
                     "--out", str(out)])
    (line,) = _error_lines(capsys)
    assert rc == 2 and line.startswith("te-train: error: --window 100000000000000")
    assert not out.exists()  # refused before anything was created


def test_window_check_uses_available_memory(tmp_path, capsys, monkeypatch):
    # 64 samples x 74 neurons = 4736 bytes: refused when only 8 kB are available.
    monkeypatch.setattr(train, "usable_memory", lambda device: 8000)
    rc = train.main(["--quiet", "--dataset", "synthetic", "--window", "64", "--out",
                     str(tmp_path / "m")])
    (line,) = _error_lines(capsys)
    assert rc == 2 and "--window 64" in line and "available" in line
    monkeypatch.setattr(train, "usable_memory", lambda device: 10_000)
    rc = train.main(["--quiet", "--dataset", "synthetic", "--arms", "baseline", "--window", "64",
                     "--epochs", "1", "--out", str(tmp_path / "m")])
    assert rc == 0


def test_eval_train_records_the_papers_metric(tmp_path):
    # --eval-train: train_acc is eval-mode accuracy over the whole training split (the seed
    # paper's "validation" set is its training set), train_acc_running the mini-batches' mean.
    rc, out = _run(tmp_path, "et", "--dataset", "digits", "--arms", "baseline", "--epochs", "3",
                   "--limit-train", "300", "--eval-train")
    assert rc == 0
    res = _results(out)
    assert res["config"]["eval_train"] is True
    for e in res["runs"][0]["epochs"]:
        assert 0 <= e["train_acc"] <= 1 and 0 <= e["train_acc_running"] <= 1
        assert e["train_acc"] * 300 == round(e["train_acc"] * 300)  # a count over 300 samples
    summary = res["summary"]["baseline"]
    assert "epochs_to_train_target" in summary
    with open(os.path.join(out, "results.csv")) as f:
        assert {"train_acc", "train_acc_running"} <= set(next(csv.reader(f)))
    rc, plain = _run(tmp_path, "plain", "--dataset", "digits", "--arms", "baseline", "--epochs",
                     "3", "--limit-train", "300")
    # Measuring the training split changes nothing that is trained.
    assert _metrics(_results(plain)) == _metrics(res)
    assert "train_acc" not in _results(plain)["runs"][0]["epochs"][0]


def test_deep_arm_puts_feedback_on_every_linear_and_resumes_exactly(tmp_path):
    args = ["--dataset", "digits", "--arms", "te_deep", "--limit-train", "300", *ACTIVE_TE]
    rc, full = _run(tmp_path, "full", *args, "--epochs", "3")
    assert rc == 0
    ck = load_checkpoint(os.path.join(full, "checkpoints", "te_deep-seed0.pt"))
    (hidden,) = ck["te_feedback_extra"]  # digits: Linear 128->64, then the classifier 64->10
    assert hidden["te"].shape == (128, 64) and float(hidden["te"].max()) > 0
    assert ck["te_feedback"]["te"].shape == (64, 10)
    rc, part = _run(tmp_path, "part", *args, "--epochs", "2")
    rc, part = _run(tmp_path, "part", *args, "--epochs", "3", "--resume")
    assert rc == 0 and _metrics(_results(part)) == _metrics(_results(full))
    rc, te = _run(tmp_path, "te", "--dataset", "digits", "--arms", "te", "--limit-train", "300",
                  "--epochs", "3", *ACTIVE_TE)
    assert _metrics(_results(te))[0][2] != _metrics(_results(full))[0][2]  # the hidden layer counts
