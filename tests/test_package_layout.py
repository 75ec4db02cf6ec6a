"""The op library stands alone: the paper application lives in te_ext.experiments, and the
old import paths keep working for one release with a DeprecationWarning."""

import importlib
import subprocess
import sys

import pytest

import te_ext
import te_ext.experiments as experiments

MOVED_NAMES = ("PRESETS", "Preset", "build_model", "load_dataset", "presets_markdown")
MOVED_MODULES = ("models", "data", "train", "results", "checkpoint")


def test_import_te_ext_does_not_load_the_experiments():
    code = ("import sys, te_ext; "
            "print(sorted(m for m in sys.modules if m.startswith('te_ext.experiments')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", MOVED_NAMES)
def test_old_top_level_names_warn_and_alias(name):
    assert name not in te_ext.__all__
    with pytest.warns(DeprecationWarning, match=f"te_ext.experiments.{name}"):
        value = getattr(te_ext, name)
    assert value is getattr(experiments, name)


@pytest.mark.parametrize("module", MOVED_MODULES)
def test_old_module_paths_warn_and_alias(module):
    sys.modules.pop(f"te_ext.{module}", None)
    with pytest.warns(DeprecationWarning, match=f"te_ext.experiments.{module}"):
        old = importlib.import_module(f"te_ext.{module}")
    assert old is importlib.import_module(f"te_ext.experiments.{module}")


def test_unknown_attribute_still_raises():
    with pytest.raises(AttributeError, match="no_such_name"):
        te_ext.no_such_name  # noqa: B018


def test_python_dash_m_old_train_path_runs():
    out = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-m", "te_ext.train",
                          "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--dataset" in out.stdout
