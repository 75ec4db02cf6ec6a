"""pytest-benchmark setup for bench/: the --full switch, the shape parametrisation, seeds,
a time budget per benchmark, and the build/BLAS/thread facts recorded with every run.

Run with ``pytest bench/ --benchmark-only`` (the repository's testpaths only name tests/).
"""

from __future__ import annotations

import os
import platform
import random
import sys
import time
from typing import Any, Callable, Dict

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))

import workloads  # noqa: E402

# Seconds of timing per benchmark. Quick keeps `report.py --quick` to a few minutes on 2 cores.
BUDGET_S = {"quick": 0.4, "full": 2.0}
MIN_ROUNDS = 5
MAX_ROUNDS = 1000
# A round shorter than this is dominated by timer and call overhead; batch iterations instead.
MIN_ROUND_S = 2e-3


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true", default=False,
                     help="bench/: add the larger shapes and the k=3, l=2 case at every shape")


def _full(config: pytest.Config) -> bool:
    return bool(config.getoption("--full"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    full = _full(metafunc.config)
    for name, cases in (("kernel_case", workloads.kernel_cases(full)),
                        ("t_scan_case", workloads.t_scan_cases(full)),
                        ("pair_scan_case", workloads.pair_scan_cases(full))):
        if name in metafunc.fixturenames:
            # Module scope makes pytest run every benchmark of one shape together, so an op
            # and its baselines are timed close together, under the same background load.
            metafunc.parametrize(name, cases, ids=[c.id for c in cases], scope="module")


@pytest.fixture(autouse=True)
def _seeded() -> None:
    random.seed(workloads.SEED)
    np.random.seed(workloads.SEED)
    torch.manual_seed(workloads.SEED)


@pytest.fixture
def measure(benchmark, request) -> Callable[..., Any]:
    """Time ``fn`` under a fixed budget and label it for report.py.

    ``role`` is "ours" or "baseline"; ``label`` names the implementation in the table;
    ``scale`` multiplies the time when the work timed is a sample (PyInform on some pairs).
    Rounds are sized from one untimed call, so a 2 s baseline gets a few rounds and a 50 us
    op gets hundreds, and every benchmark costs about the same wall time.
    """
    budget = BUDGET_S["full" if _full(request.config) else "quick"]

    def run(fn: Callable[[], Any], *, group: str, role: str, label: str,
            scale: float = 1.0, **extra: Any) -> Any:
        benchmark.group = group
        benchmark.extra_info.update(role=role, label=label, scale=scale, **extra)
        # Warm-up: first-call allocations and lazy initialisation stay out of the timing.
        start = time.perf_counter()
        fn()
        once = max(time.perf_counter() - start, 1e-7)
        # The fastest of a few calls sizes the rounds: one call caught by a burst of background
        # load would otherwise leave a fast op with a handful of rounds.
        for _ in range(3 if once < 0.2 else 0):
            start = time.perf_counter()
            fn()
            once = min(once, max(time.perf_counter() - start, 1e-7))
        iterations = max(1, min(1000, int(MIN_ROUND_S / once)))
        rounds = int(budget / (once * iterations))
        rounds = max(MIN_ROUNDS if once < 1.0 else 3, min(MAX_ROUNDS, rounds))
        return benchmark.pedantic(fn, rounds=rounds, iterations=iterations, warmup_rounds=0)

    return run


def runtime_info() -> Dict[str, Any]:
    """What decides the speed of this run: te_ext's kernel, threads, and torch's BLAS."""
    info: Dict[str, Any] = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_blas": torch.backends.mkl.is_available() and "mkl" or "other",
        "mkldnn": torch.backends.mkldnn.is_available(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_parallel_info": torch.__config__.parallel_info(),
        "python": platform.python_version(),
        # Thread and spin settings change shared-machine timings a lot; record them.
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                               "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")},
    }
    build = torch.__config__.show()
    for line in build.splitlines():
        if "BLAS_INFO=" in line:
            info["torch_blas"] = line.split("BLAS_INFO=")[1].split(",")[0]
    try:
        import te_ext

        info["te_ext"] = te_ext.build_info()
    except Exception as exc:  # noqa: BLE001  (report, do not fail, when te_ext is mid-rebuild)
        info["te_ext"] = f"unavailable: {type(exc).__name__}: {exc}"
    try:
        info["numpy_blas"] = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # noqa: BLE001  (older numpy has no dict mode)
        info["numpy_blas"] = "unknown"
    return info


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: Dict[str, Any]) -> None:
    machine_info["te_bench"] = runtime_info()
    machine_info["te_bench"]["full"] = _full(config)
