"""The extension and torch share one C++ runtime: formatted error messages arrive whole.

A private static copy of libstdc++ in te_ext/_C*.so truncates every message that formats
a number (GCC 12) or crashes the process inside std::ostream::_M_insert (GCC 13); see
docs/building.md and scripts/check_libstdcxx.sh. Each case runs in a child process, so
a crash fails this test instead of taking pytest down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import te_ext

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import torch, te_ext
try:
    te_ext.te_from_counts(torch.ones(2, 7, dtype=torch.long))
except ValueError as e:
    print("MESSAGE:" + str(e).splitlines()[0])
else:
    print("NO ERROR")
"""


def _child(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)


def test_formatted_error_message_is_complete_in_a_child_process():
    r = _child(CHILD)
    assert r.returncode == 0, f"child died with {r.returncode} (a crash?)\n{r.stdout}\n{r.stderr}"
    lines = [l for l in r.stdout.splitlines() if l.startswith("MESSAGE:")]
    assert len(lines) == 1, r.stdout + r.stderr
    # Every number of the message is there, and the text after the last one.
    msg = lines[0][len("MESSAGE:"):]
    assert msg.startswith("te.te_from_counts: ") and "2^(k+l+1) = 8" in msg, msg
    assert "k=1" in msg and msg.endswith("got 7"), msg


@pytest.mark.skipif(shutil.which("readelf") is None or shutil.which("nm") is None,
                    reason="readelf / nm (binutils) not installed")
def test_extension_links_libstdcxx_dynamically():
    so = te_ext._C.__file__
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "check_libstdcxx.sh"), so],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
