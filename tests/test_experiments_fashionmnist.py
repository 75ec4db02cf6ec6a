"""FashionMNIST offline (idx files: gzipped, torchvision's layout, Debian's path), the arm
grammar NAME[:RULE[:ESTIMATOR]], --limit-train, the TE diagnostics and the issue's
acceptance command on a tiny generated FashionMNIST."""

from __future__ import annotations

import csv
import gzip
import json
import os
import struct

import numpy as np
import pytest
import torch

from te_ext.experiments import arms as arms_mod
from te_ext.experiments import data as data_mod
from te_ext.experiments import train
from te_ext.experiments.arms import ArmError, file_stem, parse_arm, parse_arms
from te_ext.experiments.data import (DatasetUnavailable, limit_train, load_dataset, read_idx,
                                     stratified_subset)
from te_ext.experiments.diagnostics import TEDiagnostics
from te_ext.experiments.results import _paired, plot_te_diagnostics, summarize

NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


# ----------------------------------------------------------------------------- idx files

def _idx_bytes(a: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[a.dtype]
    return (bytes([0, 0, code, a.ndim]) + struct.pack(">" + "I" * a.ndim, *a.shape)
            + a.tobytes())


def _write(path: str, payload: bytes, gz: bool) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with (gzip.open(path + ".gz", "wb") if gz else open(path, "wb")) as f:
        f.write(payload)


def _tiny_fashion(n_train=60, n_test=20, seed=0):
    """Learnable 28x28 uint8 images: each class a bright block in its own place."""
    rng = np.random.default_rng(seed)

    def draw(n):
        y = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(y)
        x = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
        for i, c in enumerate(y):
            r, col = divmod(int(c), 5)
            x[i, 4 + 10 * r:12 + 10 * r, 2 + 5 * col:6 + 5 * col] = 250
        return x, y

    return {"train": draw(n_train), "test": draw(n_test)}


def _write_fashion(directory: str, gz: bool, arrays=None) -> dict:
    arrays = arrays or _tiny_fashion()
    for split, (images, labels) in NAMES.items():
        x, y = arrays[split]
        _write(os.path.join(directory, images), _idx_bytes(x), gz)
        _write(os.path.join(directory, labels), _idx_bytes(y), gz)
    return arrays


@pytest.fixture
def no_debian(tmp_path, monkeypatch):
    """Debian's path pointed at an empty directory, so only what a test writes is found."""
    empty = tmp_path / "no-debian"
    empty.mkdir()
    monkeypatch.setattr(data_mod, "DEBIAN_FASHIONMNIST", str(empty))
    return str(empty)


def _check_loaded(d, arrays):
    assert d.name == "fashionmnist" and d.num_classes == 10 and d.input_shape == (1, 28, 28)
    for split, got in (("train", d.train), ("test", d.test)):
        x, y = arrays[split]
        assert got.x.dtype == torch.uint8 and got.y.dtype == torch.int64
        np.testing.assert_array_equal(got.x[:, 0].numpy(), x)
        np.testing.assert_array_equal(got.y.numpy(), y.astype(np.int64))
    # Standardised with the training split's statistics: its float pixels have mean 0, std 1.
    xb, _ = d.train.batch(torch.arange(len(d.train)))
    assert abs(float(xb.mean())) < 1e-4 and abs(float(xb.std(unbiased=False)) - 1) < 1e-3


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip(tmp_path, gz):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write(str(tmp_path / "a-idx3-ubyte"), _idx_bytes(a), gz)
    got = read_idx(str(tmp_path / ("a-idx3-ubyte" + (".gz" if gz else ""))))
    np.testing.assert_array_equal(got, a)
    assert got.flags.writeable
    b = np.array([1, -2, 70000], dtype=">i4")
    _write(str(tmp_path / "b"), _idx_bytes(b), gz=False)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "b")), [1, -2, 70000])


@pytest.mark.parametrize("payload, match", [
    (b"\x00\x00\x08", "not an idx file"),                    # shorter than a magic number
    (b"\x1f\x00\x08\x01" + b"\x00" * 8, "not an idx file"),  # first bytes not zero
    (b"\x00\x00\x07\x01" + b"\x00" * 8, "not an idx file"),  # unknown type code
    (b"\x00\x00\x08\x03\x00\x00", "truncated"),              # header cut short
    (b"\x00\x00\x08\x01\x00\x00\x00\x05abcd", "truncated or corrupt"),  # 4 of 5 bytes
    (b"\x00\x00\x08\x01\x00\x00\x00\x02abc", "truncated or corrupt"),   # a byte too many
])
def test_read_idx_rejects_bad_files_naming_them(tmp_path, payload, match):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(str(path))
    assert str(path) in str(info.value)


def test_read_idx_rejects_a_broken_gzip(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="cannot be read") as info:
        read_idx(str(path))
    assert str(path) in str(info.value)


def test_fashionmnist_from_gz_files_directly_in_data_dir(tmp_path, no_debian):
    arrays = _write_fashion(str(tmp_path / "d"), gz=True)
    _check_loaded(load_dataset("fashionmnist", str(tmp_path / "d")), arrays)


@pytest.mark.parametrize("gz", [True, False])
def test_fashionmnist_from_torchvision_layout(tmp_path, no_debian, gz):
    arrays = _write_fashion(str(tmp_path / "d" / "FashionMNIST" / "raw"), gz=gz)
    _check_loaded(load_dataset("fashionmnist", str(tmp_path / "d")), arrays)


def test_fashionmnist_from_the_debian_path(tmp_path, monkeypatch):
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    arrays = _write_fashion(str(debian), gz=True)
    monkeypatch.setattr(data_mod, "DEBIAN_FASHIONMNIST", str(debian))
    _check_loaded(load_dataset("fashionmnist", str(tmp_path / "empty")), arrays)


def test_data_dir_comes_before_the_debian_path(tmp_path, monkeypatch):
    _write_fashion(str(tmp_path / "debian"), gz=True, arrays=_tiny_fashion(seed=1))
    mine = _write_fashion(str(tmp_path / "d"), gz=True, arrays=_tiny_fashion(seed=2))
    monkeypatch.setattr(data_mod, "DEBIAN_FASHIONMNIST", str(tmp_path / "debian"))
    _check_loaded(load_dataset("fashionmnist", str(tmp_path / "d")), mine)


def test_fashionmnist_missing_says_how_to_get_it(tmp_path, no_debian):
    # Three of the four files are not enough.
    _write_fashion(str(tmp_path / "d"), gz=True)
    os.remove(tmp_path / "d" / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("fashionmnist", str(tmp_path / "d"))
    msg = str(info.value)
    for needle in ("dataset-fashion-mnist", "scripts/get-data.sh fashionmnist", no_debian,
                   "FashionMNIST/raw", "t10k-labels-idx1-ubyte", "--download"):
        assert needle in msg, needle


def test_fashionmnist_damaged_file_names_it(tmp_path, no_debian):
    _write_fashion(str(tmp_path / "d"), gz=False)
    bad = tmp_path / "d" / "train-labels-idx1-ubyte"
    bad.write_bytes(bad.read_bytes()[:-3])
    with pytest.raises(DatasetUnavailable, match="train-labels-idx1-ubyte.*truncated"):
        load_dataset("fashionmnist", str(tmp_path / "d"))


def test_fashionmnist_labels_and_images_must_agree(tmp_path, no_debian):
    arrays = _tiny_fashion()
    x, y = arrays["train"]
    arrays["train"] = (x, y[:-1])
    _write_fashion(str(tmp_path / "d"), gz=True, arrays=arrays)
    with pytest.raises(DatasetUnavailable, match="60 images but 59 labels"):
        load_dataset("fashionmnist", str(tmp_path / "d"))


def test_cli_without_the_data_exits_2_with_instructions(tmp_path, no_debian, capsys):
    rc = train.main(["--quiet", "--dataset", "fashionmnist", "--data-dir", str(tmp_path / "x"),
                     "--out", str(tmp_path / "out"), "--epochs", "1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "dataset-fashion-mnist" in err and "get-data.sh" in err
    assert not os.path.exists(tmp_path / "out" / "results.json")


# --------------------------------------------------------------------------- --limit-train

def test_stratified_subset_keeps_class_shares_and_is_deterministic():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    idx = stratified_subset(y, 10)
    assert idx.tolist() == sorted(set(idx.tolist())) and len(idx) == 10
    assert torch.bincount(y[idx], minlength=3).tolist() == [5, 3, 2]
    assert torch.equal(idx, stratified_subset(y, 10))
    assert not torch.equal(idx, stratified_subset(y, 10, seed=1))
    # Largest remainders: 7 of (50, 30, 20) is 3.5, 2.1, 1.4 -> 4, 2, 1.
    assert torch.bincount(y[stratified_subset(y, 7)], minlength=3).tolist() == [4, 2, 1]
    with pytest.raises(ValueError, match="limit_train"):
        stratified_subset(y, 0)
    with pytest.raises(ValueError, match="limit_train"):
        stratified_subset(y, 101)


def test_limit_train_is_independent_of_the_run_seed():
    d = data_mod.synthetic(n_train=200)
    torch.manual_seed(123)
    a = limit_train(d, 50)
    torch.manual_seed(456)
    b = limit_train(d, 50)
    assert torch.equal(a.train.x, b.train.x) and len(a.train) == 50
    assert torch.bincount(a.train.y).tolist() == [5] * 10
    assert a.test is d.test
    assert limit_train(d, None) is d and limit_train(d, 10_000) is d


def test_cli_limit_train_rejects_bad_values(tmp_path):
    with pytest.raises(SystemExit) as info:
        train.main(["--quiet", "--dataset", "synthetic", "--limit-train", "1",
                    "--out", str(tmp_path)])
    assert info.value.code == 2


# ---------------------------------------------------------------------------- arm grammar

@pytest.mark.parametrize("text, te, rule", [
    ("baseline", False, None), ("te", True, None), ("te:paper", True, "paper"),
    ("te:authors_code", True, "authors_code"), ("te:paper:plugin", True, "paper"),
])
def test_valid_arm_names(text, te, rule):
    arm = parse_arm(text)
    assert (arm.name, arm.te, arm.rule) == (text, te, rule)


@pytest.mark.parametrize("text, match", [
    ("", "bad arm"), ("te:", "bad arm"), (":paper", "bad arm"), ("te::plugin", "bad arm"),
    ("te:paper:plugin:x", "bad arm"), ("Te", "unknown NAME"), ("foo", "unknown NAME"),
    ("baseline:paper", "takes no RULE"), ("te:hebbian", "unknown RULE"),
    ("te:paper:bootstrap", "unknown ESTIMATOR"),
])
def test_invalid_arm_names(text, match):
    with pytest.raises(ArmError, match=match):
        parse_arm(text)


def test_parse_arms_list():
    assert [a.name for a in parse_arms(" baseline, te ,te:authors_code")] == \
        ["baseline", "te", "te:authors_code"]
    with pytest.raises(ArmError, match="more than once"):
        parse_arms("te,baseline,te")
    with pytest.raises(ArmError, match="no arm"):
        parse_arms(" , ")


def test_estimator_arms_pass_the_keyword():
    assert parse_arm("te:paper:plugin").te_kwargs({"rule": "authors_code"}) == \
        {"rule": "paper", "estimator": "plugin"}
    arm = parse_arm("te:paper:effective")
    assert arm.te_kwargs({"rule": "authors_code", "window": 500}) == \
        {"rule": "paper", "window": 500, "estimator": "effective"}


@pytest.mark.parametrize("text, measure, deep", [
    ("mi", "mi", False), ("phi:paper", "phi", False), ("te_shifted:paper:plugin", "te_shifted", False),
    ("te_deep", "te", True), ("te_deep:authors_code:analytic", "te", True)])
def test_ablation_arms(text, measure, deep):
    arm = parse_arm(text)
    kw = arm.te_kwargs({"window": 500})
    assert kw.get("measure", "te") == measure
    assert (kw.get("layers") == arms_mod.ALL_LINEAR) == deep
    assert "measure" not in parse_arm("te").te_kwargs({})  # te's settings stay as they were


@pytest.mark.parametrize("text", ["mi:paper:analytic", "phi:paper:effective", "te_shifted:paper:analytic"])
def test_ablation_arms_refuse_other_estimators(text):
    with pytest.raises(ArmError, match="plugin estimator only"):
        parse_arm(text)


def test_file_stem_is_safe_and_distinct():
    stems = {file_stem(a) for a in ("baseline", "te", "te:paper", "te:authors_code",
                                    "te:paper:effective", "te:paper:analytic")}
    assert len(stems) == 6 and not any(":" in s or "/" in s for s in stems)


# ----------------------------------------------------------------------------- diagnostics

class _FakeFeedback:
    def __init__(self, rule="paper"):
        self.rule, self.te = rule, None


def test_diagnostics_match_numpy():
    fb = _FakeFeedback()
    diag = TEDiagnostics(fb)
    diag.start_epoch(4)
    rng = np.random.default_rng(0)
    mats = [rng.exponential(0.01, size=(6, 3)).astype(np.float32) for _ in range(3)]
    diag.observe()  # no T yet: the window is filling
    for m in mats:
        fb.te = torch.from_numpy(m)
        diag.observe()
    out = diag.end_epoch()
    pooled = np.concatenate([m.ravel() for m in mats]).astype(np.float64)
    assert out["te_steps"] == 3
    assert out["te_median"] == pytest.approx(np.median(pooled), rel=1e-6)
    assert out["te_p99"] == pytest.approx(np.quantile(pooled, 0.99), rel=1e-6)
    assert out["te_mean"] == pytest.approx(pooled.mean(), rel=1e-6)
    assert out["grad_scale_mean"] == pytest.approx(1 + pooled.mean(), rel=1e-9)
    assert out.get("te_frac_significant") is None
    # The next epoch starts empty.
    fb.te = None
    diag.start_epoch(2)
    diag.observe()
    empty = diag.end_epoch()
    assert empty["te_steps"] == 0 and empty["te_median"] is None


def test_diagnostics_authors_code_has_no_gradient_scale_and_p_values_hook():
    fb = _FakeFeedback("authors_code")
    fb.te = torch.full((2, 2), 0.5)
    fb.p_values = torch.tensor([[0.01, 0.2], [0.04, 0.9]])
    diag = TEDiagnostics(fb)
    diag.start_epoch(1)
    diag.observe()
    out = diag.end_epoch()
    assert out["grad_scale_mean"] is None and out["te_mean"] == pytest.approx(0.5)
    assert out["te_frac_significant"] == pytest.approx(0.5)  # no surrogates attribute: 0.05
    assert out["te_significance_alpha"] == 0.05


def test_diagnostics_plot_with_and_without_p_values(tmp_path):
    def run(arm, seed, with_p):
        eps = [{"epoch": e, "train_loss": 1.0, "test_acc": 0.5, "seconds": 1.0,
                "te_seconds": 0.1, "te_median": 1e-3 * e, "te_p99": 1e-2 * e,
                "te_mean": 2e-3 * e, "grad_scale_mean": 1 + 2e-3 * e,
                **({"te_frac_significant": 0.1 * e, "te_significance_alpha": 1 / 17}
                   if with_p else {})} for e in (1, 2, 3)]
        return {"arm": arm, "seed": seed, "epochs": eps}

    for with_p in (False, True):
        path = str(tmp_path / f"d{with_p}.png")
        plot_te_diagnostics(path, [run("te", 0, with_p), run("te:authors_code", 0, False)],
                            ["te", "te:authors_code"], title="t")
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_paired_ci_matches_a_hand_computation():
    from scipy import stats

    a = {0: 10.0, 1: 12.0, 2: 9.0, 3: 11.0}
    b = {0: 11.0, 1: 11.0, 2: 11.0, 3: 12.0, 4: 50.0}  # seed 4 is not paired
    out = _paired(a, b)
    d = np.array([-1.0, 1.0, -2.0, -1.0])
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2.0
    assert out["n"] == 4 and out["mean_diff"] == pytest.approx(-0.75)
    assert out["ci95"] == pytest.approx([-0.75 - half, -0.75 + half])
    assert out["p_value"] == pytest.approx(stats.ttest_rel(list(a.values()),
                                                           [b[s] for s in a]).pvalue)


def test_every_te_arm_is_compared_with_baseline():
    def run(arm, seed, accs):
        return {"arm": arm, "seed": seed, "epochs": [
            {"epoch": i + 1, "test_acc": a, "seconds": 1.0, "te_seconds": 0.0,
             "train_loss": 1.0} for i, a in enumerate(accs)]}

    runs = [run("baseline", 0, [0.5, 0.9]), run("baseline", 1, [0.9]),
            run("te", 0, [0.9]), run("te", 1, [0.9]),
            run("te:authors_code", 0, [0.5, 0.5, 0.9]), run("te:authors_code", 1, [0.5, 0.9])]
    s = summarize(runs, ["baseline", "te", "te:authors_code"], 0.9)
    assert "vs_baseline" not in s["baseline"]
    assert s["te"]["vs_baseline"]["epochs_to_target"]["mean_diff"] == pytest.approx(-0.5)
    assert s["te:authors_code"]["vs_baseline"]["epochs_to_target"]["mean_diff"] == \
        pytest.approx(1.0)


# ---------------------------------------------------------------- the acceptance command

def test_acceptance_command_on_a_tiny_fashionmnist(tmp_path, monkeypatch, capsys):
    """The issue's acceptance command, with a tiny generated FashionMNIST at Debian's path
    (monkeypatched) and a window small enough for T to exist within one short epoch."""
    debian = tmp_path / "debian"
    _write_fashion(str(debian), gz=True, arrays=_tiny_fashion(n_train=400, n_test=50))
    monkeypatch.setattr(data_mod, "DEBIAN_FASHIONMNIST", str(debian))
    out = str(tmp_path / "fm-smoke")
    arms = "baseline,te,te:authors_code"
    rc = train.main(["--dataset", "fashionmnist", "--data-dir", str(tmp_path / "none"),
                     "--arms", arms, "--seeds", "1", "--epochs", "1", "--limit-train", "200",
                     "--batch-size", "20", "--window", "60", "--threads", "1", "--out", out])
    assert rc == 0
    captured = capsys.readouterr()
    # Not a terminal: no progress-bar fragments, but one line per epoch.
    assert "\r" not in captured.err and "it/s" not in captured.err
    assert "baseline seed 0 epoch 1/1: train loss" in captured.out
    with open(os.path.join(out, "results.json")) as f:
        res = json.load(f)
    assert res["config"]["arms"] == arms.split(",") and res["config"]["limit_train"] == 200
    assert res["config"]["arm_te"]["baseline"] is None
    assert res["config"]["arm_te"]["te:authors_code"]["rule"] == "authors_code"
    assert res["config"]["arm_te"]["te"]["rule"] == "paper"
    assert [r["arm"] for r in res["runs"]] == arms.split(",")
    assert set(res["summary"]) == set(arms.split(","))
    by_arm = {r["arm"]: r["epochs"][0] for r in res["runs"]}
    assert "te_median" not in by_arm["baseline"]
    for arm in ("te", "te:authors_code"):
        e = by_arm[arm]
        assert e["te_steps"] >= 1 and 0 <= e["te_median"] <= e["te_p99"]
    assert by_arm["te"]["grad_scale_mean"] == pytest.approx(1 + by_arm["te"]["te_mean"])
    assert by_arm["te:authors_code"]["grad_scale_mean"] is None
    for name in ("results.csv", "curves.png", "te_diagnostics.png",
                 "checkpoints/baseline-seed0.pt", "checkpoints/te-seed0.pt",
                 "checkpoints/te+authors_code-seed0.pt"):
        assert os.path.isfile(os.path.join(out, name)), name
    with open(os.path.join(out, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["arm"] for r in rows] == arms.split(",")
    assert rows[0]["te_median"] == "" and float(rows[1]["te_median"]) >= 0
    assert "te:authors_code − baseline" in captured.out


# ------------------------------------------------------------------- scripts/get-data.sh

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "get-data.sh")


def _as_non_root(cmd):
    import shutil

    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot test the non-root branch")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]


def test_get_data_script_usage_and_non_root_instructions(tmp_path):
    import subprocess

    bad = subprocess.run(["bash", SCRIPT, "imagenet"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr
    # Not root and nothing installed: it changes nothing and says what to place where.
    env = dict(os.environ, TE_EXT_FASHIONMNIST_DEBIAN_DIR=str(tmp_path / "none"))
    out = subprocess.run(_as_non_root(["bash", SCRIPT, "fashionmnist"]), capture_output=True,
                         text=True, env=env)
    assert out.returncode == 1, out.stderr
    for needle in ("apt-get install -y dataset-fashion-mnist", "train-images-idx3-ubyte.gz",
                   "t10k-labels-idx1-ubyte.gz", "FashionMNIST/raw/", "--data-dir"):
        assert needle in out.stderr, needle
    # Installed: it says so and succeeds, root or not (it checks before anything else; run as
    # this user, who can read tmp_path).
    _write_fashion(str(tmp_path / "debian"), gz=True, arrays=_tiny_fashion(n_train=10, n_test=10))
    env["TE_EXT_FASHIONMNIST_DEBIAN_DIR"] = str(tmp_path / "debian")
    ok = subprocess.run(["bash", SCRIPT, "fashionmnist"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and "already installed" in ok.stdout


def test_resume_of_a_named_rule_arm_is_bit_identical(tmp_path):
    """The long run resumes te:authors_code from te+authors_code-seed<s>.pt: an interrupted
    run continued with --resume equals the uninterrupted one, diagnostics included."""
    args = ["--quiet", "--dataset", "synthetic", "--arms", "te:authors_code", "--window", "64",
            "--threads", "1"]
    assert train.main([*args, "--epochs", "2", "--out", str(tmp_path / "full")]) == 0
    assert train.main([*args, "--epochs", "1", "--out", str(tmp_path / "part")]) == 0
    assert os.path.isfile(tmp_path / "part" / "checkpoints" / "te+authors_code-seed0.pt")
    assert train.main([*args, "--epochs", "2", "--resume", "--out", str(tmp_path / "part")]) == 0

    def measured(name):
        with open(tmp_path / name / "results.json") as f:
            runs = json.load(f)["runs"]
        return [{k: v for k, v in e.items() if "seconds" not in k} for e in runs[0]["epochs"]]

    full = measured("full")
    assert len(full) == 2 and full[1]["te_steps"] > 0
    assert measured("part") == full
