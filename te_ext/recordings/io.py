"""``te-matrix``'s input and output: recordings in, one ``.npz`` out, never a partial file.

Input is recognised by its bytes, not its name: a ``.npy`` (bool or 0/1 ``[T, N]``) or an
``.npz`` of spike times (``spike_times``, ``spike_neurons``, optionally ``t_start`` and
``t_stop``). Anything else, empty, truncated or corrupt, is one :class:`InputError`.

Output goes through :class:`SafeOutput`:

* Its size is estimated first and refused when it does not fit the free disk: the TE itself,
  its temporary copy and the rest.
* ``te`` is written with ordinary file writes into a preallocated temporary beside the
  output. A full disk is then an ``OSError``, not a ``SIGBUS`` from a memory map.
* Everything is then packed into a temporary ``.npz``, fsynced and renamed over the output.
* Any failure or signal removes the temporaries (see ``cli.main``). An output that names the
  input, or that exists and is not a regular file (a FIFO, a device), is refused before
  anything is written.
"""

from __future__ import annotations

import math
import os
import shutil
import stat
import tempfile
import tokenize
import zipfile
import zlib
from typing import Optional, Tuple

import numpy as np

from .._checks import usable_memory


class InputError(Exception):
    """Bad input or output: reported as one line and exit code 2."""


NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"

def check_fits_memory(nbytes: int, what: str) -> None:
    """InputError unless ``nbytes`` fit in the memory te_ext may use here (its one probe)."""
    usable = usable_memory("cpu")
    if nbytes > usable:
        raise InputError(f"{what} needs {nbytes / 2**30:.3g} GiB of memory, more than the "
                         f"{usable / 2**30:.3g} GiB usable here")


def _kind(path: str) -> str:
    if not os.path.exists(path):
        raise InputError(f"no such input file: {path}")
    if not os.path.isfile(path):
        raise InputError(f"input {path} is not a regular file")
    with open(path, "rb") as f:
        head = f.read(6)
    if not head:
        raise InputError(f"{path} is empty")
    if head.startswith(ZIP_MAGIC):
        return "npz"
    if head.startswith(NPY_MAGIC):
        return "npy"
    raise InputError(f"{path} is neither a .npy nor a .npz file (its first bytes are {head!r})")


# What a damaged file raises from numpy's readers: a mangled .npy header inside an .npz reaches
# numpy's header parser as broken Python source (SyntaxError, tokenize.TokenError).
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError,
                SyntaxError, tokenize.TokenError)


def load_npy(path: str) -> np.ndarray:
    """A bool ``[T, N]`` array from a bool or 0/1 ``.npy``."""
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except _READ_ERRORS as e:
        raise InputError(f"cannot read {path}: {e}") from None
    if not isinstance(a, np.ndarray) or a.ndim != 2:
        raise InputError(f"{path}: expected a [T, N] array of 0/1, got shape "
                         f"{getattr(a, 'shape', '?')}")
    if a.dtype == np.bool_:
        check_fits_memory(a.size, f"{path} ({a.shape[0]} x {a.shape[1]} bins)")
        return np.array(a)  # into memory, off the memmap
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise InputError(f"{path}: expected bool or 0/1 numbers, got dtype {a.dtype}")
    check_fits_memory(a.size, f"{path} ({a.shape[0]} x {a.shape[1]} bins)")
    rows = max(1, (64 << 20) // max(1, a.shape[1] * a.itemsize))
    out = np.empty(a.shape, dtype=np.bool_)
    try:
        for t in range(0, a.shape[0], rows):
            chunk = np.asarray(a[t:t + rows])
            bad = (chunk != 0) & (chunk != 1)
            if bad.any():
                t_bad, n_bad = np.argwhere(bad)[0]
                raise InputError(f"{path}: not binary: value {chunk[t_bad, n_bad].item()!r} at "
                                 f"[{t + t_bad}, {n_bad}]; expected only 0 and 1")
            out[t:t + rows] = chunk != 0
    except _READ_ERRORS as e:  # a truncated file fails on the first page it lacks
        raise InputError(f"cannot read {path}: {e}") from None
    return out


def _finite(name: str, value: Optional[float]) -> Optional[float]:
    if value is not None and not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value}")
    return value


class PackedRecording:
    """A binned recording as bit-packed words: ``words`` int64 ``[N, W]``, ``W >= T / 64``, bit ``t``
    of row ``i`` (least significant first) set if neuron ``i`` spiked in bin ``t``; the bits
    at or past ``length`` are zero. What :func:`te_ext.delays.transfer_entropy_delays_packed`
    reads: 1/8 of a bool ``[T, N]`` raster, which is never made."""

    def __init__(self, words: np.ndarray, length: int):
        self.words, self.length = words, int(length)

    @property
    def shape(self) -> Tuple[int, int]:
        return self.length, self.words.shape[0]

    def dense(self) -> np.ndarray:
        """The bool ``[T, N]`` raster (for the paths that read one)."""
        bits = np.unpackbits(self.words.view(np.uint8), axis=1, bitorder="little")
        return bits[:, :self.length].T.astype(np.bool_)


def _spike_bins(times, neurons, *, bin, t0, t1, n, where, bytes_per_cell: float, bounds=None):
    """The checks and the binning rule of :func:`bin_spikes`: (bin of each kept spike, its
    neuron, number of bins, number of neurons). ``bounds`` (a dict) receives the t0, bin and
    bins used."""
    times = np.asarray(times)
    neurons = np.asarray(neurons)
    if times.ndim != 1 or neurons.ndim != 1 or times.shape != neurons.shape:
        raise InputError(f"{where}: spike_times and spike_neurons must be 1-d of one length, got "
                         f"{times.shape} and {neurons.shape}")
    if not np.issubdtype(times.dtype, np.number) or np.issubdtype(times.dtype, np.complexfloating):
        raise InputError(f"{where}: spike_times must be real numbers, got dtype {times.dtype}")
    if not np.issubdtype(neurons.dtype, np.integer):
        raise InputError(f"{where}: spike_neurons must be integers, got dtype {neurons.dtype}")
    integer_times = np.issubdtype(times.dtype, np.integer)
    times = times.astype(np.float64)
    if not np.isfinite(times).all():
        q = int(np.flatnonzero(~np.isfinite(times))[0])
        raise InputError(f"{where}: spike_times[{q}] is {times[q]}; every spike time must be finite")
    if bin is None and integer_times:
        bin = 1.0  # integer times are bin indices already
    if bin is None:
        raise InputError(f"{where}: .npz spike input with non-integer spike_times needs --bin "
                         f"(the bin width); integer times are taken as bin indices (--bin 1)")
    if not (bin > 0 and math.isfinite(bin)):
        raise InputError(f"--bin must be a positive number, got {bin}")
    _finite("--t0", t0)
    _finite("--t1", t1)
    if neurons.size:
        lo, hi = int(neurons.min()), int(neurons.max())  # Python ints: no uint64 wrap
        if lo < 0:
            raise InputError(f"{where}: spike_neurons holds {lo}; neuron ids must be >= 0")
    if n is None:
        if neurons.size == 0:
            raise InputError(f"{where}: no spikes, and no --neurons to say how many neurons")
        n = hi + 1
    if n < 1:
        raise InputError(f"--neurons must be >= 1, got {n}")
    if neurons.size and hi >= n:
        raise InputError(f"{where}: spike_neurons holds {hi}, out of range [0, {n})")
    if t0 is None:
        t0 = float(times.min()) if times.size else 0.0
    if t1 is None:
        if not times.size:
            raise InputError(f"{where}: no spikes, and no --t1 to say where the recording ends")
        span = (float(times.max()) - t0) / bin
        nbins = math.floor(span) + 1 if span >= 0 else 0
        t1 = math.inf  # every spike from t0 on is inside
    else:
        span = (t1 - t0) / bin
        nbins = math.ceil(span) if math.isfinite(span) and span > 0 else 0
    if nbins < 1:
        raise InputError(f"empty time range [{t0}, {t1}) with --bin {bin}")
    def count(v: int) -> str:  # a bin count from --t1 1e300 has 300 digits
        return str(v) if v < 10**12 else f"{v:.3g}"

    t1_said = "just past the last spike" if math.isinf(t1) else t1
    check_fits_memory(math.ceil(nbins * n * bytes_per_cell),
                      f"binning into {count(nbins)} bins x {count(n)} neurons (--bin {bin}, "
                      f"--t0 {t0}, --t1 {t1_said}, --neurons {count(n)})")
    if bounds is not None:
        bounds.update(t0=float(t0), bin=float(bin), bins=int(nbins))
    keep = (times >= t0) & (times < t1)
    b = np.floor((times[keep] - t0) / bin).astype(np.int64)
    b = np.minimum(b, nbins - 1)  # rounding at t1: t < t1 stays in the last bin
    return b, neurons[keep].astype(np.int64), nbins, n


def bin_spikes(times: np.ndarray, neurons: np.ndarray, *, bin: float, t0: Optional[float],
               t1: Optional[float], n: Optional[int], where: str = "input",
               bounds: Optional[dict] = None) -> np.ndarray:
    """Bool ``[T, N]``: entry ``[b, i]`` is 1 if neuron ``i`` spiked in bin ``b``.

    The rule, exact at the edges: a spike at time ``t`` in ``[t0, t1)`` goes to bin
    ``b = floor((t - t0) / bin)``. It lands in exactly one bin. If rounding puts it at or past
    the last bin while ``t < t1``, it goes to the last bin. Spikes outside ``[t0, t1)`` are
    dropped.

    - By default ``t0`` is the first spike.
    - By default ``t1`` lies just past the last spike: the recording then has
      ``floor((last - t0) / bin) + 1`` bins, and the last spike is always kept.
    - With ``t1`` given, there are ``ceil((t1 - t0) / bin)`` bins.
    - ``bin`` may be None for integer ``times``: they are bin indices (``bin = 1``).

    ``bounds``, a dict if given, receives the ``t0``, ``bin`` and number of ``bins`` used.
    """
    b, ids, nbins, n = _spike_bins(times, neurons, bin=bin, t0=t0, t1=t1, n=n, where=where,
                                   bytes_per_cell=1, bounds=bounds)
    out = np.zeros((nbins, n), dtype=np.bool_)
    out[b, ids] = True
    return out


def bin_spikes_packed(times: np.ndarray, neurons: np.ndarray, *, bin: float,
                      t0: Optional[float], t1: Optional[float], n: Optional[int],
                      where: str = "input", bounds: Optional[dict] = None) -> PackedRecording:
    """:func:`bin_spikes` (the same rule and checks) into bit-packed words: memory that
    follows the bins / 8 and the spikes, never a ``[T, N]`` byte array."""
    b, ids, nbins, n = _spike_bins(times, neurons, bin=bin, t0=t0, t1=t1, n=n, where=where,
                                   bytes_per_cell=1 / 8, bounds=bounds)
    width = -(-nbins // 512) * 8  # words, padded as the kernels pad rows: read without a copy
    words = np.zeros((n, width), dtype=np.uint64)
    cell = np.unique(ids * nbins + b)  # one bit per (neuron, bin), however many spikes
    ids, b = cell // nbins, cell % nbins
    np.bitwise_or.at(words, (ids, b >> 6), np.left_shift(np.uint64(1), (b & 63).astype(np.uint64)))
    return PackedRecording(words.view(np.int64), nbins)


def load_series(path: str, *, bin: Optional[float], t0: Optional[float], t1: Optional[float],
                neurons: Optional[int], packed: bool = False, bounds: Optional[dict] = None):
    """The recording as bool ``[T, N]``, from either input format (recognised by content); with
    ``packed``, spike-time input is binned into a :class:`PackedRecording` instead. For
    spike-time input, ``bounds`` (a dict) receives the ``t0``, ``bin`` and ``bins`` used and
    where the range came from (``range_from``)."""
    if _kind(path) == "npy":
        return load_npy(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("spike_times", "spike_neurons") if k not in z.files]
            if missing:
                raise InputError(f"{path}: missing {', '.join(missing)} (has "
                                 f"{', '.join(z.files) or 'nothing'})")
            times, ids = z["spike_times"], z["spike_neurons"]
            t_start = float(z["t_start"]) if "t_start" in z.files and t0 is None else t0
            t_stop = float(z["t_stop"]) if "t_stop" in z.files and t1 is None else t1
            if bounds is not None:
                bounds["range_from"] = (
                    ("--t0" if t0 is not None else "the file's t_start" if t_start is not None
                     else "the first spike") + " to " +
                    ("--t1" if t1 is not None else "the file's t_stop" if t_stop is not None
                     else "just past the last spike"))
    except InputError:
        raise
    except _READ_ERRORS as e:
        raise InputError(f"cannot read {path}: {e}") from None
    return (bin_spikes_packed if packed else bin_spikes)(times, ids, bin=bin, t0=t_start,
                                                         t1=t_stop, n=neurons, where=path,
                                                         bounds=bounds)


# ----------------------------------------------------------------------------- output

def check_output(out: str, inputs: Tuple[str, ...] = ()) -> str:
    """The absolute output path, refused unless it can be replaced safely."""
    if not out:
        raise InputError("--out must name a file, got ''")
    out = os.path.abspath(out)
    folder = os.path.dirname(out)
    if os.path.isdir(out):
        raise InputError(f"cannot write {out}: it is a directory")
    if not os.path.isdir(folder):
        raise InputError(f"cannot write {out}: no such directory {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {out}: directory {folder} is not writable")
    if os.path.lexists(out):
        st = os.stat(out) if os.path.exists(out) else os.lstat(out)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"cannot write {out}: it exists and is not a regular file (a FIFO, "
                             f"a device or a dangling link); remove it or choose another --out")
        for path in inputs:
            if path and os.path.exists(path) and os.path.samefile(path, out):
                raise InputError(f"--out {out} is the input file; choose another output")
    return out


def check_fits_disk(out: str, nbytes: int) -> None:
    free = shutil.disk_usage(os.path.dirname(out)).free
    if nbytes > free:
        raise InputError(f"cannot write {out}: the output and its temporaries need "
                         f"{nbytes / 2**30:.3g} GiB, and {free / 2**30:.3g} GiB are free there")


def _anonymous_file(folder: str, suffix: str):
    """(a read-write binary file in ``folder``, its name or None). Where the kernel offers
    O_TMPFILE (Linux) the file has no name until :func:`_name` links it, so nothing, not even
    SIGKILL, can leave it behind; elsewhere it is a named mkstemp file."""
    if hasattr(os, "O_TMPFILE"):
        try:
            fd = os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600)
            return os.fdopen(fd, "w+b"), None
        except OSError:  # a file system without O_TMPFILE support
            pass
    fd, path = tempfile.mkstemp(prefix=SafeOutput.PREFIX, suffix=suffix, dir=folder)
    return os.fdopen(fd, "w+b"), path


def _linkat_follow():
    """libc's linkat with AT_SYMLINK_FOLLOW: how open(2) says to give an O_TMPFILE file a name
    (Python's os.link does not follow /proc/self/fd/N, so it would link the symlink)."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    at_fdcwd, at_symlink_follow = -100, 0x400

    def link(src: str, dst: str) -> None:
        if libc.linkat(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst),
                       at_symlink_follow) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), dst)
    return link


def _name(f, folder: str, suffix: str) -> str:
    """A name in ``folder`` for the anonymous file ``f``."""
    link = _linkat_follow()
    for _ in range(100):
        path = os.path.join(folder, f"{SafeOutput.PREFIX}{os.urandom(6).hex()}{suffix}")
        try:
            link(f"/proc/self/fd/{f.fileno()}", path)
            return path
        except FileExistsError:
            continue
    raise OSError(f"no free temporary name in {folder}")


class SafeOutput:
    """``te [D, N, N]`` written block by block into a preallocated temporary ``.npy`` beside
    ``out``, then everything packed into a temporary ``.npz`` there, fsynced, and renamed over
    ``out`` by :meth:`commit`. :meth:`discard` removes whatever temporaries exist. On Linux
    both temporaries are unnamed (O_TMPFILE) until the ``.npz`` is linked for its rename, so
    a killed run leaves nothing."""

    PREFIX = ".te-matrix-"

    def __init__(self, out: str, te_shape: Tuple[int, int, int], dtype):
        self.out, self.shape, self.dtype = out, te_shape, np.dtype(dtype)
        self.te_path = self.npz_path = self._file = None
        folder = os.path.dirname(out)
        self._file, self.te_path = _anonymous_file(folder, ".npy")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": tuple(te_shape)}
        np.lib.format.write_array_header_1_0(self._file, header)
        self._offset = self._file.tell()
        total = self._offset + int(np.prod(te_shape)) * self.dtype.itemsize
        try:  # claim the space now: a full disk (or a file-size limit) fails here
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(self._file.fileno(), 0, total)
            else:
                self._file.truncate(total)
        except BaseException:
            self.discard()
            raise

    def write_rows(self, i0: int, block: np.ndarray) -> None:
        """``te[:, i0:i0 + b, :] = block`` (``block [D, b, N]``)."""
        D, N, _ = self.shape
        block = np.ascontiguousarray(block, dtype=self.dtype)
        row = N * self.dtype.itemsize
        for d in range(D):
            os.pwrite(self._file.fileno(), block[d].tobytes(),
                      self._offset + (d * N + i0) * row)

    def commit(self, **arrays) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        folder = os.path.dirname(self.out)
        raw, self.npz_path = _anonymous_file(folder, ".npz")
        with raw:
            with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
                with z.open("te.npy", "w", force_zip64=True) as dst:
                    self._file.seek(0)
                    shutil.copyfileobj(self._file, dst, 16 << 20)
                for name, value in arrays.items():
                    with z.open(f"{name}.npy", "w", force_zip64=True) as dst:
                        np.lib.format.write_array(dst, np.asanyarray(value), allow_pickle=False)
            raw.flush()
            os.fsync(raw.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(raw.fileno(), 0o666 & ~umask)  # 0600 is for the temporary only
            if self.npz_path is None:  # unnamed until now: a name only for the rename
                self.npz_path = _name(raw, folder, ".npz")
        os.replace(self.npz_path, self.out)
        self.npz_path = None
        try:  # the rename itself, on disk
            dfd = os.open(os.path.dirname(self.out), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass

    def discard(self) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None
        for path in (self.te_path, self.npz_path):
            if path:
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
        self.te_path = self.npz_path = None
