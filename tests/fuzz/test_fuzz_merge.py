"""Fuzz te-train-merge's input: a real results.json (two te-train parts of the synthetic
dataset), mutated at a random place: a key removed, a value replaced by another type, NaN,
a huge or negative number, a deep nesting, a duplicate run, or the file truncated or made
invalid UTF-8. The merge must succeed (exit 0, a readable merged results.json) or refuse with
exit status 2 and one line on stderr (``te-train-merge: error: ...``), never a traceback."""

from __future__ import annotations

import copy
import json
import os

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from te_ext.experiments import merge, train  # noqa: E402

LONG = os.environ.get("TE_FUZZ_PROFILE", "") == "long"
ARGS = ["--dataset", "synthetic", "--arms", "baseline,te", "--epochs", "1", "--window", "64",
        "--quiet", "--limit-train", "200"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    out = []
    for seed in (0, 1):
        folder = tmp_path_factory.mktemp(f"part{seed}")
        assert train.main([*ARGS, "--seeds", str(seed + 1), "--first-seed", str(seed),
                           "--out", str(folder)]) == 0
        with open(folder / "results.json") as f:
            out.append(json.load(f))
    return out


def _paths(doc, prefix=()):
    """Every (path, value) inside a JSON document."""
    yield prefix, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for q, v in enumerate(doc):
            yield from _paths(v, prefix + (q,))


REPLACEMENTS = [None, True, 0, -1, 2**70, 1e308, float("nan"), float("inf"), "", "x", [], {},
                [None], {"a": 1}, [[[[[[[[1]]]]]]]]]


@settings(max_examples=400 if LONG else 60, derandomize=not LONG, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_merge_refuses_cleanly_or_merges(tmp_path_factory, parts, capsys, data):
    docs = copy.deepcopy(parts)
    which = data.draw(st.integers(0, 1))
    paths = list(_paths(docs[which]))
    path, _ = paths[data.draw(st.integers(0, len(paths) - 1))]
    how = data.draw(st.sampled_from(["replace", "delete", "duplicate", "truncate", "bytes"]))
    if path and how in ("replace", "delete", "duplicate"):
        parent = docs[which]
        for key in path[:-1]:
            parent = parent[key]
        if how == "replace":
            parent[path[-1]] = data.draw(st.sampled_from(REPLACEMENTS))
        elif how == "delete":
            del parent[path[-1]]
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
    folder = tmp_path_factory.mktemp("merge")
    files = []
    for q, doc in enumerate(docs):
        raw = json.dumps(doc, allow_nan=True).encode()
        if q == which and how == "truncate":
            raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
        elif q == which and how == "bytes":
            at = data.draw(st.integers(0, len(raw) - 1))
            raw = raw[:at] + b"\xff\xfe" + raw[at:]
        files.append(folder / f"part{q}.json")
        files[-1].write_bytes(raw)
    capsys.readouterr()
    rc = merge.main([str(f) for f in files] + ["--out", str(folder / "merged")])
    err = capsys.readouterr().err
    if rc == 0:
        with open(folder / "merged" / "results.json") as f:
            assert json.load(f)["runs"]
    else:
        assert rc == 2, (path, how, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("te-train-merge: error: "), (path, how, err)


def test_the_unmutated_parts_merge(tmp_path, parts):
    files = []
    for q, doc in enumerate(parts):
        files.append(tmp_path / f"part{q}.json")
        files[-1].write_text(json.dumps(doc))
    assert merge.main([str(f) for f in files] + ["--out", str(tmp_path / "merged")]) == 0
    with open(tmp_path / "merged" / "results.json") as f:
        assert sorted((r["arm"], r["seed"]) for r in json.load(f)["runs"]) == [
            ("baseline", 0), ("baseline", 1), ("te", 0), ("te", 1)]
