"""Fault injection for te-train: kill -9 during a checkpoint write, corrupted or foreign
checkpoints, unwritable output directories, leftover temp files.

Every refusal must be one line on stderr (``te-train: error: ...`` naming the file or the
flag), exit status 2, and leave the checkpoint's bytes as they were. Tiny settings (the
``synthetic`` dataset, one or two epochs) keep the whole file well under a minute.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal

import pytest
import torch

from te_ext.experiments import train
from te_ext.experiments.checkpoint import load_checkpoint, save_checkpoint
from te_train_worker import te_train_worker
from state_equal import state_equal

ARGS = ["--quiet", "--dataset", "synthetic", "--window", "64", "--target-transform", "sigmoid"]


def _cli(out, *args, env=None):
    """te-train in a child process (forked from tests/te_train_worker.py's worker)."""
    return te_train_worker().run([*ARGS, "--out", str(out), *args], cwd=os.getcwd(),
                                 timeout=300, env=env)


# Run in the child before te-train's main: its KILL_AT-th checkpoint write stops halfway, the
# bytes on disk, and the process SIGKILLs itself, as a kill -9 or a power cut would.
TORN_CHECKPOINT = """
def _install(kill_at):  # closures: exec runs this in the child's function scope
    import os, signal
    from te_ext.experiments import checkpoint as ck
    whole, seen = ck.atomic_write, [0]

    class Torn:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            os.fsync(self.f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)

        def __getattr__(self, name):
            return getattr(self.f, name)

    def atomic_write(path, write, mode="wb"):
        if str(path).endswith(".pt"):
            seen[0] += 1
            if seen[0] == kill_at:
                return whole(path, lambda f: write(Torn(f)), mode)
        return whole(path, write, mode)

    ck.atomic_write = atomic_write

_install(KILL_AT)
"""


def _metrics(out):
    with open(os.path.join(out, "results.json")) as f:
        runs = json.load(f)["runs"]
    return [(r["arm"], r["seed"], [(e["epoch"], e["train_loss"], e["test_acc"])
                                   for e in r["epochs"]]) for r in runs]


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _snapshot(directory):
    """Name -> sha256 of every file under ``directory``: what "nothing overwritten" means."""
    return {os.path.relpath(os.path.join(d, n), directory): _digest(os.path.join(d, n))
            for d, _, names in os.walk(directory) for n in names}


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("te-train: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """An output directory with one epoch of baseline and te, seed 0 (made once)."""
    out = tmp_path_factory.mktemp("made") / "run"
    assert train.main([*ARGS, "--out", str(out), "--arms", "baseline,te", "--epochs", "1"]) == 0
    return out


@pytest.fixture
def run_copy(one_epoch, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(one_epoch, out)
    return out


def _resume_refused(out, capsys, *extra, arms="baseline,te"):
    """--resume must refuse with one line naming the file, exit 2, nothing written."""
    before = _snapshot(out)
    capsys.readouterr()
    rc = train.main([*ARGS, "--out", str(out), "--arms", arms, "--epochs", "2", "--resume",
                     *extra])
    line = _one_error_line(capsys.readouterr().err)
    assert rc == 2
    assert _snapshot(out) == before
    return line


# -- integrity: the file is not what te-train wrote ----------------------------------------

def _xor_middle(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes(b ^ 0xA5 for b in data[mid:mid + 64]) + data[mid + 64:]


CORRUPTIONS = {
    "xor-64-bytes-mid-file": _xor_middle,
    "truncated-half": lambda d: d[:len(d) // 2],
    "truncated-in-header": lambda d: d[:10],
    "empty": lambda d: b"",
    "garbage": lambda d: bytes(range(256)) * 40,
    "last-byte-flipped": lambda d: d[:-1] + bytes([d[-1] ^ 1]),
    "hash-line-edited": lambda d: d.replace(b"sha256 ", b"sha256 0", 1)[:len(d)],
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupted_checkpoint_is_refused(run_copy, capsys, name):
    path = run_copy / "checkpoints" / "te-seed0.pt"
    path.write_bytes(CORRUPTIONS[name](path.read_bytes()))
    line = _resume_refused(run_copy, capsys)
    assert str(path) in line


def test_pickle_of_other_content_is_refused(run_copy, capsys):
    path = run_copy / "checkpoints" / "baseline-seed0.pt"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    line = _resume_refused(run_copy, capsys)
    assert str(path) in line and "not" in line


def test_old_unchecksummed_format_is_refused(run_copy, capsys):
    # What te-train wrote before checksums: a bare torch.save of the same dict.
    path = run_copy / "checkpoints" / "baseline-seed0.pt"
    state = load_checkpoint(str(path))
    torch.save(state, str(path))
    line = _resume_refused(run_copy, capsys)
    assert str(path) in line and "older te-train" in line


# -- consistency: a well-formed checkpoint that does not belong to this run ---------------

def _rewrite(path, **changes):
    state = load_checkpoint(str(path))
    state.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del state[key]
    save_checkpoint(str(path), state)  # a valid hash: only the consistency check can object


def test_epoch_past_the_configured_epochs_is_refused(run_copy, capsys):
    path = run_copy / "checkpoints" / "te-seed0.pt"
    state = load_checkpoint(str(path))
    history = [dict(state["epochs"][0], epoch=e) for e in range(1, 100)]
    _rewrite(path, epoch=99, epochs=history)
    line = _resume_refused(run_copy, capsys)
    assert str(path) in line and "epoch 99" in line


def test_epoch_inconsistent_with_its_history_is_refused(run_copy, capsys):
    path = run_copy / "checkpoints" / "te-seed0.pt"
    _rewrite(path, epoch=2)  # the history still holds one epoch
    line = _resume_refused(run_copy, capsys)
    assert str(path) in line and "history" in line


def test_missing_signature_is_refused(run_copy, capsys):
    path = run_copy / "checkpoints" / "baseline-seed0.pt"
    _rewrite(path, signature=None)
    line = _resume_refused(run_copy, capsys)
    assert str(path) in line and "signature" in line


def test_checkpoint_of_another_seed_is_refused(run_copy, capsys):
    ckpt = run_copy / "checkpoints"
    shutil.copy(ckpt / "baseline-seed0.pt", ckpt / "baseline-seed1.pt")
    line = _resume_refused(run_copy, capsys, "--seeds", "2", arms="baseline")
    assert str(ckpt / "baseline-seed1.pt") in line and "seed 0" in line


def test_checkpoint_of_another_arm_is_refused(run_copy, capsys):
    ckpt = run_copy / "checkpoints"
    shutil.copy(ckpt / "baseline-seed0.pt", ckpt / "te-seed0.pt")
    line = _resume_refused(run_copy, capsys)
    assert str(ckpt / "te-seed0.pt") in line and "'baseline'" in line


def test_weights_of_another_shape_are_refused(run_copy, capsys):
    path = run_copy / "checkpoints" / "baseline-seed0.pt"
    state = load_checkpoint(str(path))
    name = next(iter(state["model"]))
    _rewrite(path, model=dict(state["model"], **{name: torch.zeros(3)}))
    line = _resume_refused(run_copy, capsys)
    assert str(path) in line and name in line


def test_intact_checkpoints_still_resume(run_copy, capsys):
    """The control: the same directory, untouched, resumes (so the refusals above come from
    the corruption, not from the set-up)."""
    rc = train.main([*ARGS, "--out", str(run_copy), "--arms", "baseline,te", "--epochs", "2",
                     "--resume"])
    assert rc == 0
    assert [len(r[2]) for r in _metrics(run_copy)] == [2, 2]


def test_corruption_in_a_child_process(run_copy):
    """The same refusal as an exit status: 2, one line on stderr, no traceback."""
    path = run_copy / "checkpoints" / "te-seed0.pt"
    path.write_bytes(_xor_middle(path.read_bytes()))
    before = _snapshot(run_copy)
    proc = _cli(run_copy, "--arms", "baseline,te", "--epochs", "2", "--resume")
    assert proc.rc == 2
    assert str(path) in _one_error_line(proc.stderr) and "hash" in proc.stderr
    assert _snapshot(run_copy) == before


# -- kill -9 during a checkpoint write ------------------------------------------------------

KILL_RUN = ["--arms", "baseline,te", "--epochs", "2"]


@pytest.fixture(scope="module")
def never_killed(tmp_path_factory):
    full = tmp_path_factory.mktemp("full") / "run"
    assert train.main([*ARGS, "--out", str(full), *KILL_RUN]) == 0
    return full


@pytest.mark.parametrize("kill_at", [1, 4])
def test_kill_during_checkpoint_write_then_resume_is_bit_identical(tmp_path, never_killed,
                                                                   kill_at):
    """Checkpoint writes run baseline epochs 1, 2 then te epochs 1, 2; the child SIGKILLs
    itself halfway through write ``kill_at`` (1: before any checkpoint exists; 4: te's
    second, with its first on disk). --resume then finishes exactly as a run never killed."""
    run, full = KILL_RUN, never_killed

    part = tmp_path / "part"
    proc = te_train_worker().run([*ARGS, "--out", str(part), *run], cwd=os.getcwd(),
                                 timeout=300, python=TORN_CHECKPOINT.replace("KILL_AT", str(kill_at)))
    assert proc.signal == signal.SIGKILL, proc.stderr
    ckpt = part / "checkpoints"
    temps = [n for n in os.listdir(ckpt) if n.endswith(".tmp")]
    assert len(temps) == 1 and os.path.getsize(ckpt / temps[0]) > 0  # the torn write
    if kill_at == 4:
        assert load_checkpoint(str(ckpt / "te-seed0.pt"))["epoch"] == 1  # the last good one

    proc = _cli(part, *run, "--resume")
    assert proc.rc == 0, proc.stderr
    assert not [n for n in os.listdir(ckpt) if n.endswith(".tmp")]
    assert _metrics(part) == _metrics(full)
    for arm in ("baseline", "te"):
        a = load_checkpoint(str(full / "checkpoints" / f"{arm}-seed0.pt"))
        b = load_checkpoint(str(ckpt / f"{arm}-seed0.pt"))
        assert a["epoch"] == b["epoch"] == 2
        # torch's generator is the one training draws from (numpy's and Python's start from
        # per-process entropy, so they differ between the two processes of this test).
        assert torch.equal(a["rng"]["torch"], b["rng"]["torch"]), arm
        for key in ("model", "optimizer", "te_feedback"):
            sa, sb = a[key], b[key]
            if key == "te_feedback" and sa is not None:  # its wall-clock total differs
                sa, sb = dict(sa, seconds=0), dict(sb, seconds=0)
            assert state_equal(sa, sb), (arm, key)


def test_leftover_temp_files_are_removed_and_others_kept(run_copy):
    ckpt = run_copy / "checkpoints"
    stale = [ckpt / ".te-seed0.pt.k2j4_x9q.tmp", run_copy / ".results.json.a1b2c3d4.tmp"]
    for p in stale:
        p.write_bytes(b"")
    keep = [ckpt / "notes.tmp", run_copy / ".hidden", ckpt / ".te-seed0.pt.tmp"]
    for p in keep:
        p.write_bytes(b"mine")
    assert train.main([*ARGS, "--out", str(run_copy), "--arms", "baseline,te", "--epochs", "1",
                       "--resume"]) == 0
    assert not any(p.exists() for p in stale)
    assert all(p.read_bytes() == b"mine" for p in keep)


# -- unwritable --out ----------------------------------------------------------------------

def _unwritable(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    yield "/proc/x"                 # a file system that refuses new directories
    yield "/dev/null/x"             # below a device
    yield str(a_file / "x")         # below a regular file
    yield str(a_file)               # a regular file itself
    if os.geteuid() != 0:           # root writes through permission bits
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o500)
        yield str(ro / "out")


def test_unwritable_out_is_one_line(tmp_path, capsys):
    for out in _unwritable(tmp_path):
        capsys.readouterr()
        rc = train.main([*ARGS, "--out", out, "--arms", "baseline", "--epochs", "1"])
        line = _one_error_line(capsys.readouterr().err)
        assert rc == 2 and f"--out {out}" in line, out


def test_unwritable_out_in_a_child_process():
    proc = _cli("/dev/null/x", "--arms", "baseline", "--epochs", "1")
    assert proc.rc == 2
    assert "--out /dev/null/x" in _one_error_line(proc.stderr)
