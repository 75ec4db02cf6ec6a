"""The op library stands alone: the apps (te_ext.experiments, te_ext.recordings) sit above it,
and importing te_ext loads neither. The 0.1 aliases of the experiments' modules were removed
in 0.2.0 (CHANGELOG.md)."""

import ast
import importlib
import pathlib
import subprocess
import sys

import pytest

import te_ext

ROOT = pathlib.Path(__file__).resolve().parents[1]
APPS = ("te_ext.experiments", "te_ext.recordings")
LIBRARY = [p for p in (ROOT / "te_ext").rglob("*.py")
           if not any(part in ("experiments", "recordings") for part in p.relative_to(ROOT / "te_ext").parts)
           and p.name != "matrix.py"]  # the -m entry point of an app


def test_import_te_ext_loads_no_app():
    code = ("import sys, te_ext; "
            "print(sorted(m for m in sys.modules if m.startswith(('te_ext.experiments', "
            "'te_ext.recordings'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_never_imports_an_app(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-node.level])
                base = f"{pkg}.{base}" if base else pkg
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        assert not any(n.startswith(APPS) for n in names), (path, names)


@pytest.mark.parametrize("module", ["models", "data", "train", "results", "checkpoint"])
def test_the_removed_aliases_are_gone(module):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"te_ext.{module}")
    assert not hasattr(te_ext, "PRESETS")


def test_one_version():
    assert te_ext.__version__ == "0.2.0"
    assert 'version=_version()' in (ROOT / "setup.py").read_text()
