"""Build te_ext: the C++/CUDA op library (te_ext._C) and the Python package.

Environment switches (see docs/building.md):
  TE_EXT_CPU_ONLY=1         never build the CUDA kernels
  FORCE_CUDA=1              build them even where auto-detection says no (error if impossible)
  CUDA_HOME=...             the toolkit; defaults to /usr/local/cuda when it holds nvcc
  TORCH_CUDA_ARCH_LIST=...  GPU architectures; defaults to "8.0;9.0" (A100, H100)
  TE_EXT_DEBUG=1            -O0 -g
  TE_EXT_WERROR=0           warnings stay warnings (a compiler CI does not use, e.g. on a
                            lent GPU machine, must not fail the build over a new warning)

After building, scripts/check_libstdcxx.sh checks that the extension links libstdc++
dynamically; the build fails if it does not (see docs/building.md).
"""

import glob
import os
import subprocess
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "8.0;9.0"


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _default_cuda_home():
    # /usr/local/bin/nvcc can be a wrapper, which makes torch guess /usr/local
    # as the toolkit and then fail to link -lcudart; the real toolkit wins.
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    for cand in ("/usr/local/cuda",):
        if os.path.exists(os.path.join(cand, "bin", "nvcc")):
            os.environ["CUDA_HOME"] = cand
            return


_default_cuda_home()

import torch  # noqa: E402  (after CUDA_HOME is settled: cpp_extension reads it on import)
from torch.utils import cpp_extension  # noqa: E402


def _want_cuda():
    if _flag("TE_EXT_CPU_ONLY"):
        return False
    if _flag("FORCE_CUDA"):
        if torch.version.cuda is None:
            sys.exit("FORCE_CUDA=1 but this torch has no CUDA support (torch.version.cuda is None)")
        if cpp_extension.CUDA_HOME is None:
            sys.exit("FORCE_CUDA=1 but no CUDA toolkit was found; set CUDA_HOME")
        return True
    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None


def _extension():
    with_cuda = _want_cuda()
    if with_cuda and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        # With no GPU to query, torch's arch detection raises; pick ours.
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCHS
    debug = _flag("TE_EXT_DEBUG")
    opt = ["-O0", "-g"] if debug else ["-O3"]

    sources = sorted(glob.glob("csrc/*.cpp")) + sorted(glob.glob("csrc/cpu/*.cpp"))
    # torch's headers are system headers: warnings-as-errors apply to our code only.
    isystem = []
    try:
        torch_includes = cpp_extension.include_paths(device_type="cuda" if with_cuda else "cpu")
    except TypeError:  # torch < 2.6 spells it include_paths(cuda=...)
        torch_includes = cpp_extension.include_paths(cuda=with_cuda)
    for d in torch_includes:
        isystem += ["-isystem", d]
    werror = os.environ.get("TE_EXT_WERROR", "1").strip() != "0"
    warn = ["-Wall", "-Wextra"] + (["-Werror"] if werror else [])
    cxx = opt + ["-fopenmp", "-fvisibility=hidden"] + warn + isystem
    kwargs = {}
    if with_cuda:
        sources += sorted(glob.glob("csrc/cuda/*.cu")) + sorted(glob.glob("csrc/cuda/*.cpp"))
        nvcc = opt + (["-Werror", "all-warnings"] if werror else []) + [
            "-Xcompiler", ",".join(warn + ["-fvisibility=hidden"]),
        ] + isystem
        kwargs["extra_compile_args"] = {"cxx": cxx + ["-DTE_WITH_CUDA=1"],
                                        "nvcc": nvcc + ["-DTE_WITH_CUDA=1"]}
        ext_cls = cpp_extension.CUDAExtension
    else:
        kwargs["extra_compile_args"] = {"cxx": cxx}
        ext_cls = cpp_extension.CppExtension
    print(f"te_ext: building the {'CUDA + CPU' if with_cuda else 'CPU-only'} extension"
          + (f" for TORCH_CUDA_ARCH_LIST={os.environ['TORCH_CUDA_ARCH_LIST']}" if with_cuda else ""))
    return ext_cls(
        name="te_ext._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        # libstdc++ explicitly and dynamically: before the compiler driver's own -lstdc++,
        # so a toolchain that defaults to -static-libstdc++ (e.g. a GCC 13 under /opt/gcc)
        # still resolves it from the shared library torch uses. A private static copy breaks
        # every formatted error message (docs/building.md); the post-build check catches
        # a toolchain that only has libstdc++.a.
        extra_link_args=["-fopenmp", "-Wl,-Bdynamic", "-lstdc++"],
        **kwargs,
    )


def _version():
    """te_ext/_version.py's __version__, read as text (importing te_ext needs the built _C)."""
    import re

    with open(os.path.join(ROOT, "te_ext", "_version.py")) as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


_BuildExtBase = cpp_extension.BuildExtension.with_options(use_ninja=True)


class BuildExtension(_BuildExtBase):
    """torch's BuildExtension, then scripts/check_libstdcxx.sh on every built module."""

    def build_extension(self, ext):
        super().build_extension(ext)
        check = os.path.join(ROOT, "scripts", "check_libstdcxx.sh")
        path = self.get_ext_fullpath(ext.name)
        if not os.path.exists(check):  # e.g. a source copy without scripts/
            print(f"te_ext: WARNING: {check} not found; libstdc++ linkage of {path} not checked")
            return
        if subprocess.call(["bash", check, os.path.abspath(path)], cwd=ROOT) != 0:
            sys.exit(f"te_ext: the build of {path} links a private copy of libstdc++; error "
                     "messages would be truncated or crash the process. See the lines above "
                     "and README \"Building\".")


setup(
    name="te_ext",
    version=_version(),
    description="Transfer entropy between binary time series as fast torch ops (CPU + CUDA), "
    "and TE-modulated training",
    packages=find_packages(include=["te_ext", "te_ext.*"]),
    # The measured fused-kernel dispatch tables, per GPU model (te_ext/_triton/heuristic.py).
    package_data={"te_ext._triton": ["tables/*.json", "tables/README.md"]},
    python_requires=">=3.9",
    install_requires=["torch>=2.4", "numpy"],
    extras_require={
        "train": ["torchvision", "scikit-learn", "matplotlib", "tqdm"],
        # jpype1 + idtxl-uv: JIDT's infodynamics.jar for tests/test_ops_jidt.py (idtxl-uv
        # also pulls mpi4py, pyopencl, h5py...; scripts/bootstrap.sh installs it --no-deps).
        "test": ["pytest", "pytest-benchmark", "hypothesis", "pyinform", "scipy", "jpype1", "idtxl-uv"],
    },
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension},
    entry_points={"console_scripts": ["te-train = te_ext.experiments.train:main",
                                      "te-train-merge = te_ext.experiments.merge:main",
                                      "te-matrix = te_ext.recordings.cli:main"]},
    zip_safe=False,
)
