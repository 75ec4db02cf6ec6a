"""scripts/ablation_sensitivity.py: its paired differences against numbers worked out by hand."""

import json
import os
import runpy
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "ablation_sensitivity.py")


def _run(arm, seed, train_accs):
    return {"arm": arm, "seed": seed,
            "epochs": [{"epoch": i + 1, "test_acc": a - 0.05, "train_acc": a, "seconds": 1.0}
                       for i, a in enumerate(train_accs)]}


@pytest.fixture
def results(tmp_path):
    # Epochs to 0.90 train: baseline 3, 3, 4; te 2, 3, 3 (differences -1, 0, -1);
    # te_shifted never reaches 0.90 on seed 2.
    runs = [
        _run("baseline", 0, [0.8, 0.85, 0.9]), _run("te", 0, [0.8, 0.9, 0.95]),
        _run("baseline", 1, [0.8, 0.85, 0.91]), _run("te", 1, [0.8, 0.85, 0.92]),
        _run("baseline", 2, [0.8, 0.85, 0.88, 0.9]), _run("te", 2, [0.8, 0.85, 0.9, 0.9]),
        _run("te_shifted", 0, [0.9]), _run("te_shifted", 1, [0.9]),
        _run("te_shifted", 2, [0.5, 0.6]),
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"config": {}, "runs": runs}))
    return str(path)


def _table(capsys, argv):
    old = sys.argv
    sys.argv = [SCRIPT] + argv
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(SCRIPT, run_name="__main__")
    finally:
        sys.argv = old
    assert done.value.code == 0
    return capsys.readouterr().out


def test_paired_difference_and_ci(results, capsys):
    out = _table(capsys, [results, "--train", "0.90", "--test", "0.85"])
    baseline_rows = out.split("arm − te_shifted")[0]
    row = next(line for line in baseline_rows.splitlines() if line.startswith("| 0.90 train"))
    te_cell = row.split("|")[2].strip()
    # mean of (-1, 0, -1) = -0.67; t(0.975, 2) = 4.303, sd = 0.577: half-width 1.43.
    assert te_cell.startswith("-0.67 [-2.10, +0.77]"), row


def test_runs_that_never_reach_the_target_are_named(results, capsys):
    out = _table(capsys, [results, "--train", "0.90", "--test", "0.85"])
    row = next(line for line in out.split("arm − te_shifted")[1].splitlines()
               if line.startswith("| 0.90 train"))
    assert "never reached: 0 te, 1 te_shifted" in row, row
