"""te-train split over processes (--first-seed, separate arms) and te-train-merge: the merged
result equals the one-process run in everything but wall times, and bad merges are refused."""

from __future__ import annotations

import json
import os

import pytest

from te_ext.experiments import merge, train

# A small synthetic experiment with nonzero TE from the first window on (see test_train_cli).
BASE = ["--quiet", "--dataset", "synthetic", "--epochs", "2", "--target-transform", "sigmoid",
        "--window", "64"]


def _train(out, *args):
    assert train.main([*BASE, "--out", str(out), *args]) == 0
    return str(out / "results.json")


def _load(path):
    with open(path) as f:
        return json.load(f)


def _metrics(res):
    return sorted((r["arm"], r["seed"], [(e["epoch"], e["train_loss"], e["test_acc"])
                                         for e in r["epochs"]]) for r in res["runs"])


def _summary_without_times(summary):
    drop = {"seconds_to_target", "seconds_per_epoch", "te_seconds_per_epoch",
            "time_per_epoch_ratio"}
    out = {}
    for arm, s in summary.items():
        s = {k: v for k, v in s.items() if k not in drop}
        if "vs_baseline" in s:
            s["vs_baseline"] = {k: v for k, v in s["vs_baseline"].items() if k not in drop}
        out[arm] = s
    return out


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    root = tmp_path_factory.mktemp("whole")
    return _load(_train(root / "all", "--arms", "baseline,te", "--seeds", "3"))


def test_split_by_seed_and_arm_merges_to_the_whole_run(tmp_path, whole, capsys):
    parts = [
        _train(tmp_path / "a", "--arms", "baseline,te", "--seeds", "1"),                 # seed 0
        _train(tmp_path / "b", "--arms", "baseline", "--seeds", "3", "--first-seed", "1"),
        _train(tmp_path / "c", "--arms", "te", "--seeds", "3", "--first-seed", "1"),
    ]
    assert _load(parts[1])["config"]["seeds"] == [1, 2]
    capsys.readouterr()
    assert merge.main([*parts, "--out", str(tmp_path / "merged")]) == 0
    table = capsys.readouterr().out
    merged = _load(tmp_path / "merged" / "results.json")
    assert merged["config"]["arms"] == ["baseline", "te"]
    assert merged["config"]["seeds"] == [0, 1, 2]
    assert merged["config"]["merged_from"] == parts
    assert _metrics(merged) == _metrics(whole)
    assert _summary_without_times(merged["summary"]) == _summary_without_times(whole["summary"])
    assert merged["summary"]["te"]["vs_baseline"]["epochs_to_target"]["n"] == \
        whole["summary"]["te"]["vs_baseline"]["epochs_to_target"]["n"]
    for name in ("results.csv", "curves.png", "te_diagnostics.png"):
        assert os.path.getsize(tmp_path / "merged" / name) > 0
    assert "baseline" in table and "te" in table


def test_a_run_in_two_inputs_must_agree_and_the_longer_is_kept(tmp_path):
    full = _train(tmp_path / "full", "--arms", "baseline", "--seeds", "1")
    unfinished = _load(full)  # what results.json holds while the run is at its first epoch
    unfinished["runs"][0]["epochs"] = unfinished["runs"][0]["epochs"][:1]
    for docs in ([unfinished, _load(full)], [_load(full), unfinished]):
        merged = merge.merge_results(docs, ["a", "b"])
        assert [len(r["epochs"]) for r in merged["runs"]] == [2]
    # A run whose metrics were changed is not the same computation.
    bad = _load(full)
    bad["runs"][0]["epochs"][0]["test_acc"] += 0.01
    with pytest.raises(merge.MergeError, match=r"'baseline' seed 0 differs between"):
        merge.merge_results([_load(full), bad], ["full", "bad"])


@pytest.mark.parametrize("key, value", [("epochs", 5), ("lr", 0.5), ("dataset", "digits"),
                                        ("limit_train", 100)])
def test_inputs_of_another_experiment_are_refused(tmp_path, key, value):
    path = _train(tmp_path / "a", "--arms", "baseline", "--seeds", "1", "--epochs", "1")
    other = _load(path)
    other["config"][key] = value
    with pytest.raises(merge.MergeError, match=rf"differ in '{key}'"):
        merge.merge_results([_load(path), other], ["a", "other"])


def test_an_arm_with_other_te_settings_is_refused(tmp_path):
    path = _train(tmp_path / "a", "--arms", "te", "--seeds", "1", "--epochs", "1")
    other = _load(path)
    other["config"]["arm_te"]["te"] = dict(other["config"]["arm_te"]["te"], window=128)
    with pytest.raises(merge.MergeError, match=r"arm 'te' has different TE settings"):
        merge.merge_results([_load(path), other], ["a", "other"])


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    not_results = tmp_path / "other.json"
    not_results.write_text(json.dumps({"runs": []}))
    for argv, needle in (([str(tmp_path / "missing.json")], "cannot read"),
                         ([str(garbage)], "cannot read"),
                         ([str(not_results)], "is not a te-train results.json")):
        capsys.readouterr()
        assert merge.main([*argv, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("te-train-merge: error: ") and needle in err[0]


@pytest.mark.parametrize("first, seeds", [(-1, 2), (2, 2), (5, 3)])
def test_first_seed_out_of_range_is_a_usage_error(tmp_path, capsys, first, seeds):
    with pytest.raises(SystemExit) as exc:
        train.main([*BASE, "--out", str(tmp_path / "x"), "--seeds", str(seeds),
                    "--first-seed", str(first)])
    assert exc.value.code == 2
    assert "--first-seed: invalid value" in capsys.readouterr().err


def _valid_doc():
    return {"config": {"arms": ["baseline", "te"], "arm_te": {"baseline": None, "te": {"window": 8}},
                       "target_acc": 0.9, "dataset": "digits", "model": "digits", "epochs": 2,
                       "torch": "x"},
            "runs": [{"arm": "te", "seed": 0, "epochs": [
                {"epoch": 1, "train_loss": 1.0, "test_acc": 0.5, "seconds": 1.0, "te_seconds": 0.1},
                {"epoch": 2, "train_loss": 0.5, "test_acc": 0.8, "seconds": 1.0, "te_seconds": 0.1}]}]}


def _mutations():
    def m(fn):
        doc = _valid_doc()
        fn(doc)
        return doc
    deep = []
    for _ in range(100000):
        deep = [deep]
    return [
        ("arms is a string", m(lambda d: d["config"].update(arms="baseline")), "config.arms"),
        ("arms empty", m(lambda d: d["config"].update(arms=[])), "config.arms"),
        ("arms repeated", m(lambda d: d["config"].update(arms=["te", "te"])), "distinct"),
        ("arm_te a list", m(lambda d: d["config"].update(arm_te=[])), "config.arm_te"),
        ("arm_te missing an arm", m(lambda d: d["config"]["arm_te"].pop("te")), "no entry for arm 'te'"),
        ("arm_te value a number", m(lambda d: d["config"]["arm_te"].update(te=3)), "config.arm_te['te']"),
        ("target a string", m(lambda d: d["config"].update(target_acc="0.9")), "config.target_acc"),
        ("target out of range", m(lambda d: d["config"].update(target_acc=7)), "config.target_acc"),
        ("run's arm not listed", m(lambda d: d["runs"][0].update(arm="mi")), "runs[0].arm"),
        ("run without seed", m(lambda d: d["runs"][0].pop("seed")), "runs[0].seed"),
        ("seed a bool", m(lambda d: d["runs"][0].update(seed=True)), "runs[0].seed"),
        ("test_acc a string", m(lambda d: d["runs"][0]["epochs"][1].update(test_acc="0.8")),
         "runs[0].epochs[1].test_acc"),
        ("test_acc above 1", m(lambda d: d["runs"][0]["epochs"][1].update(test_acc=8.0)),
         "runs[0].epochs[1].test_acc"),
        ("epochs a dict", m(lambda d: d["runs"][0].update(epochs={})), "runs[0].epochs"),
        ("epoch numbers out of order", m(lambda d: d["runs"][0]["epochs"][1].update(epoch=5)),
         "runs[0].epochs[1].epoch"),
        ("runs an object", m(lambda d: d.update(runs={})), "runs must be a list"),
        ("run a number", m(lambda d: d["runs"].append(3)), "runs[1] must be an object"),
        ("seconds missing", m(lambda d: d["runs"][0]["epochs"][0].pop("seconds")),
         "runs[0].epochs[0].seconds"),
        ("a top-level list", [1, 2], "a JSON object"),
        ("deeply nested", {"config": deep, "runs": []}, "nested too deeply"),
    ]


@pytest.mark.parametrize("name,doc,match", _mutations(), ids=[c[0] for c in _mutations()])
def test_malformed_results_are_one_line_naming_the_field(tmp_path, capsys, name, doc, match):
    path = tmp_path / "results.json"
    if name == "deeply nested":
        path.write_text('{"config": ' + "[" * 100000 + "]" * 100000 + ', "runs": []}')
    else:
        path.write_text(json.dumps(doc))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_valid_doc()))
    assert merge.main([str(good), str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("te-train-merge: error: ") and err.count("\n") == 1, err
    assert match in err, err
    assert not (tmp_path / "out" / "results.json").exists()
