"""Run ``te-train`` (and ``te-matrix``) invocations as child processes cheaply, for the fault
and fuzz tests.

Starting an interpreter and importing torch and te_ext costs seconds per invocation (tens
of seconds on a loaded machine). Instead one worker process imports
``te_ext.experiments.train`` once and forks a child for every invocation (fork-server style).
The child runs ``train.main(argv)`` exactly as the ``te-train`` entry point does
(``sys.exit(main())``), with its own stdout/stderr files, environment additions, working
directory and optional address-space cap; the worker waits with a timeout and reports the exit
status, the signal that killed the child, or the timeout. The worker never runs a torch op, so
forking it is safe (no OpenMP pool exists in it).

    w = te_train_worker()                 # one per pytest process, started on first use
    r = w.run(["--dataset", "synthetic", ...], cwd=str(tmp_path), timeout=60)
    r.rc, r.signal, r.timed_out, r.stdout, r.stderr
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_WORKER = textwrap.dedent(r"""
    import json, os, resource, signal, sys, time, traceback
    from te_ext.experiments import train
    from te_ext.recordings import cli as matrix_cli
    ENTRIES = {"te-train": train.main, "te-matrix": matrix_cli.main}

    def vm_size():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
        return 0

    def child(req):
        os.chdir(req["cwd"])
        os.environ.update(req["env"])
        for fd, name in ((1, "stdout"), (2, "stderr")):
            out = os.open(os.path.join(req["logs"], name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, fd)
        if req["extra_address_space"] is not None:
            cap = vm_size() + req["extra_address_space"]
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        sys.argv = [req["entry"]] + req["argv"]
        try:
            if req["python"]:  # the harness's self-test: crash, hang or die on purpose
                exec(req["python"])
            rc = ENTRIES[req["entry"]](req["argv"])
        except SystemExit as exc:  # what sys.exit(main()) turns into an exit status
            if exc.code is None or isinstance(exc.code, int):
                rc = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                rc = 1
        except BaseException:
            traceback.print_exc()
            rc = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc or 0)

    print("ready", flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                child(req)
            finally:
                os._exit(70)
        deadline, status = time.monotonic() + req["timeout"], None
        while status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = "timeout"
            else:
                time.sleep(0.01)
        if status == "timeout":
            res = {"timed_out": True}
        elif os.WIFSIGNALED(status):
            res = {"signal": os.WTERMSIG(status)}
        else:
            res = {"rc": os.WEXITSTATUS(status)}
        print(json.dumps(res), flush=True)
""")


@dataclass
class Result:
    rc: Optional[int]
    signal: Optional[int]
    timed_out: bool
    stdout: str
    stderr: str


class Worker:
    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self._proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env=env)
        if self._proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the te-train worker did not start (see stderr above)")
        self._logs = tempfile.mkdtemp(prefix="te-train-worker-")

    def run(self, argv: List[str], cwd: str, timeout: float = 120,
            env: Optional[Dict[str, str]] = None, extra_address_space: Optional[int] = None,
            python: Optional[str] = None, entry: str = "te-train") -> Result:
        """Run ``entry argv`` (``te-train`` or ``te-matrix``) in a forked child in ``cwd``;
        ``env`` is added to its environment; ``extra_address_space`` bytes above the worker's
        current size cap its address space (RLIMIT_AS)."""
        req = {"argv": list(argv), "cwd": cwd, "timeout": timeout, "env": dict(env or {}),
               "logs": self._logs, "extra_address_space": extra_address_space,
               "python": python, "entry": entry}
        self._proc.stdin.write(json.dumps(req) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the te-train worker died")
        res = json.loads(line)
        logs = {}
        for name in ("stdout", "stderr"):
            with open(os.path.join(self._logs, name), errors="replace") as f:
                logs[name] = f.read()
        return Result(res.get("rc"), res.get("signal"), res.get("timed_out", False), **logs)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        shutil.rmtree(self._logs, ignore_errors=True)


_worker: Optional[Worker] = None


def te_train_worker() -> Worker:
    global _worker
    if _worker is None or _worker._proc.poll() is not None:
        _worker = Worker()
        atexit.register(_worker.close)
    return _worker
