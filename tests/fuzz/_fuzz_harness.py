"""A guarded worker for fuzzing: one persistent child process runs the examples one at a time,
under a timeout and an address-space cap, and is restarted after a crash or a hang.

A fresh process per example would cost an import of torch (seconds) each; this worker pays it
once and is replaced only when an example kills it. Parent and worker speak pickles over a pipe.
The worker caps its address space (RLIMIT_AS) at what it maps after importing torch plus
``TE_FUZZ_HEADROOM_GB`` (default 4), so an op that skipped its memory check fails fast instead
of swapping the machine; te_ext's own memory checks read that cap too.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(TESTS)
TIMEOUT_S = float(os.environ.get("TE_FUZZ_TIMEOUT", "5"))
HEADROOM = int(float(os.environ.get("TE_FUZZ_HEADROOM_GB", "4")) * (1 << 30))
START_TIMEOUT_S = 180.0  # importing torch on a loaded 2-core machine


def _send(f, obj) -> None:
    data = pickle.dumps(obj)
    f.write(struct.pack("<Q", len(data)) + data)
    f.flush()


def _recv_exact(fd: int, n: int, deadline: float) -> bytes:
    out = b""
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError
        chunk = os.read(fd, n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def _recv(fd: int, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    (n,) = struct.unpack("<Q", _recv_exact(fd, 8, deadline))
    return pickle.loads(_recv_exact(fd, n, deadline))


class Worker:
    """Runs ``module.function(case)`` in the child; returns what it returned, or
    ``("crash", detail)`` / ``("hang", detail)`` when the child died or ran past the timeout."""

    def __init__(self) -> None:
        self.proc = None
        self.restarts = 0
        self._log = tempfile.TemporaryFile()

    def _start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([REPO, TESTS, HERE, env.get("PYTHONPATH", "")])
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import _fuzz_harness; _fuzz_harness.worker_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, cwd=REPO)
        ready = _recv(self.proc.stdout.fileno(), START_TIMEOUT_S)
        assert ready == "ready", ready

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def _stderr_tail(self) -> str:
        self._log.seek(0)
        return self._log.read()[-2000:].decode(errors="replace")

    def run(self, function: str, case: Any, timeout: float = TIMEOUT_S) -> Tuple:
        if self.proc is None:
            self._start()
        try:
            _send(self.proc.stdin, (function, case))
            return _recv(self.proc.stdout.fileno(), timeout)
        except TimeoutError:
            self._kill()
            self.restarts += 1
            return ("hang", f"no answer within {timeout} s")
        except (EOFError, BrokenPipeError):
            code = self.proc.wait()
            self.proc = None
            self.restarts += 1
            return ("crash", f"worker exit code {code}; stderr tail: {self._stderr_tail()}")

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except Exception:  # noqa: BLE001
                self._kill()
            self.proc = None


def worker_main() -> None:
    """The child: protocol on the original stdout; anything printed goes to stderr."""
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    import resource

    import torch

    import _fuzz_cases  # noqa: F401  (imports te_ext and the reference)

    torch.set_num_threads(1)
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm + HEADROOM if hard == resource.RLIM_INFINITY else min(vm + HEADROOM, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    _send(proto, "ready")
    stdin = sys.stdin.buffer
    while True:
        head = stdin.read(8)
        if len(head) < 8:
            return
        (n,) = struct.unpack("<Q", head)
        function, case = pickle.loads(stdin.read(n))
        try:
            result = ("ok", getattr(_fuzz_cases, function)(case))
        except Exception as e:  # noqa: BLE001 - reported to the parent, which judges it
            result = ("raise", type(e).__name__, str(e).split("\n")[0][:2000])
        _send(proto, result)


_WORKER = None


def worker() -> Worker:
    """The session's worker (started on first use, closed at exit)."""
    global _WORKER
    if _WORKER is None:
        import atexit

        _WORKER = Worker()
        atexit.register(_WORKER.close)
    return _WORKER
