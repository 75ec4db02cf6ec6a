"""Datasets for ``te-train``, held in memory as tensors, always with a held-out test split.

* ``digits``: scikit-learn's 8×8 digits (shipped inside scikit-learn, no network), a
  fixed stratified 80/20 train/test split, pixels scaled to [0, 1], shape ``[N, 1, 8, 8]``.
* ``synthetic``: a generated 10-class task of 8×8 images (noisy class templates) for tests;
  it fits the ``digits`` network.
* ``fashionmnist``: read offline from the four original idx files (gzipped or not), parsed
  here with numpy, from the first place that holds all four of: ``data_dir/FashionMNIST/raw/``
  (torchvision's layout), ``data_dir`` itself, and :data:`DEBIAN_FASHIONMNIST` (Debian's
  package ``dataset-fashion-mnist``). Only when none has them does ``download=True`` go
  through torchvision. ``scripts/get-data.sh fashionmnist`` installs the Debian package.
* ``cifar10``, ``mnist``, ``svhn``, ``stl10``, ``usps``: through ``torchvision.datasets``
  from ``data_dir``, fetched only with ``download=True``.

The image datasets' official test splits are the test data. Pixels are kept as uint8 and
turned into floats per batch: ``x / 255`` standardised per channel with the training
split's mean and std.

The authors' code measured accuracy on training data; here every accuracy is measured on
the test split, which the training loop never sees.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["Split", "Dataset", "DATASETS", "DatasetUnavailable", "load_dataset", "digits",
           "synthetic", "epoch_order", "read_idx", "fashionmnist", "limit_train",
           "stratified_subset", "DEBIAN_FASHIONMNIST"]

# Where Debian's package dataset-fashion-mnist puts the four idx files (gzipped).
DEBIAN_FASHIONMNIST = "/usr/share/datasets/fashion-mnist"
# The original file names (without .gz): (images, labels) of each split.
FASHIONMNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                      "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# The seed of --limit-train's subset: fixed, so every run seed trains on the same samples.
LIMIT_TRAIN_SEED = 0

TORCHVISION = ("cifar10", "fashionmnist", "mnist", "svhn", "stl10", "usps")
DATASETS = ("digits", "synthetic") + TORCHVISION

# Where torchvision looks inside data_dir, for the "how to get it" message.
_LAYOUT = {
    "cifar10": "cifar-10-batches-py/ (from cifar-10-python.tar.gz)",
    "fashionmnist": "FashionMNIST/raw/ (the four *-ubyte(.gz) files)",
    "mnist": "MNIST/raw/ (the four *-ubyte(.gz) files)",
    "svhn": "train_32x32.mat and test_32x32.mat",
    "stl10": "stl10_binary/ (from stl10_binary.tar.gz)",
    "usps": "usps.bz2 and usps.t.bz2",
}


class DatasetUnavailable(RuntimeError):
    """A torchvision dataset is neither on disk nor downloadable."""


@dataclass
class Split:
    """One split: ``x`` is ``[N, C, H, W]`` (float32, or uint8 with ``scale``/``shift``)."""

    x: Tensor
    y: Tensor
    scale: Optional[Tensor] = None  # [1, C, 1, 1]: batch = x * scale + shift
    shift: Optional[Tensor] = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def batch(self, idx: Tensor, device: torch.device | str = "cpu") -> Tuple[Tensor, Tensor]:
        """The float32 inputs and int64 labels of the samples ``idx``, on ``device``."""
        xb = self.x[idx].to(device)
        yb = self.y[idx].to(device)
        xb = xb.to(torch.float32)
        if self.scale is not None:
            xb = xb * self.scale.to(device) + self.shift.to(device)
        return xb, yb


@dataclass
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        return tuple(int(s) for s in self.train.x.shape[1:])


def epoch_order(seed: int, epoch: int, n: int) -> Tensor:
    """The sample order of ``epoch`` for ``seed``: a permutation of ``range(n)``.

    It depends on ``(seed, epoch)`` alone, never on global RNG state, so both arms of a
    seed see the same order and a resumed run sees the order the uninterrupted run saw.
    """
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, np.uint64)
    gen = torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))
    return torch.randperm(n, generator=gen)


def digits(test_fraction: float = 0.2, random_state: int = 0) -> Dataset:
    """scikit-learn's digits, stratified ``1 - test_fraction`` / ``test_fraction`` split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, stratify=y,
                                          random_state=random_state)
    return Dataset("digits", Split(torch.from_numpy(xtr), torch.from_numpy(ytr)),
                   Split(torch.from_numpy(xte), torch.from_numpy(yte)), 10)


def synthetic(n_train: int = 600, n_test: int = 300, num_classes: int = 10,
              shape: Tuple[int, int, int] = (1, 8, 8), noise: float = 0.35,
              seed: int = 0) -> Dataset:
    """A learnable task: each class is a random template in [0, 1]; a sample is its class's
    template with a random contrast plus Gaussian noise, clipped to [0, 1]."""
    for arg, v in (("n_train", n_train), ("n_test", n_test), ("num_classes", num_classes)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"synthetic: {arg} must be a positive int, got {v!r}")
    if noise < 0:
        raise ValueError(f"synthetic: noise must be >= 0, got {noise}")
    gen = torch.Generator().manual_seed(seed)
    templates = torch.rand((num_classes,) + tuple(shape), generator=gen)

    def draw(n: int) -> Split:
        y = torch.arange(n) % num_classes  # balanced classes
        y = y[torch.randperm(n, generator=gen)]
        contrast = 0.7 + 0.6 * torch.rand(n, 1, 1, 1, generator=gen)
        x = templates[y] * contrast + noise * torch.randn((n,) + tuple(shape), generator=gen)
        return Split(x.clamp_(0.0, 1.0), y)

    return Dataset("synthetic", draw(n_train), draw(n_test), num_classes)


def _tv_arrays(ds) -> Tuple[Tensor, Tensor]:
    """uint8 [N, C, H, W] images and int64 labels from a torchvision dataset's arrays."""
    x = ds.data
    x = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[-1] == 3:  # CIFAR-10 stores N, H, W, C
        x = x.transpose(0, 3, 1, 2)
    labels = getattr(ds, "targets", None)
    if labels is None:
        labels = ds.labels
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)), y


def _channel_stats(x: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-channel mean and std of uint8 images in [0, 1] units, in chunks (a float64 copy
    of a whole training split would take gigabytes)."""
    s1 = torch.zeros(x.shape[1], dtype=torch.float64)
    s2 = torch.zeros_like(s1)
    for chunk in torch.split(x, 4096):
        c = chunk.to(torch.float64) / 255.0
        s1 += c.sum(dim=(0, 2, 3))
        s2 += c.square().sum(dim=(0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = s1 / n
    return mean, (s2 / n - mean.square()).clamp_min(1e-12).sqrt()


def _torchvision(name: str, data_dir: str, download: bool) -> Dataset:
    import torchvision.datasets as tvd

    def make(train: bool):
        if name == "cifar10":
            return tvd.CIFAR10(data_dir, train=train, download=download)
        if name == "fashionmnist":
            return tvd.FashionMNIST(data_dir, train=train, download=download)
        if name == "mnist":
            return tvd.MNIST(data_dir, train=train, download=download)
        if name == "usps":
            return tvd.USPS(data_dir, train=train, download=download)
        if name == "svhn":
            return tvd.SVHN(data_dir, split="train" if train else "test", download=download)
        return tvd.STL10(data_dir, split="train" if train else "test", download=download)

    try:
        splits = [_tv_arrays(make(train)) for train in (True, False)]
    except Exception as exc:  # missing files (RuntimeError, FileNotFoundError) or no network
        how = ("the download failed (is there network access?); download the files on a "
               "machine that has it and copy them" if download else
               "rerun with --download (download=True) to fetch it, or put the files")
        raise DatasetUnavailable(
            f"dataset {name!r} is not available in data_dir {os.path.abspath(data_dir)!r}: "
            f"{how} into that directory as {_LAYOUT[name]}. ({type(exc).__name__}: {exc})"
        ) from exc
    (xtr, ytr), (xte, yte) = splits
    return _normalised(name, xtr, ytr, xte, yte)


# idx type codes (the third byte of the magic number) -> numpy big-endian dtypes.
_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str) -> np.ndarray:
    """The array in the idx file ``path`` (LeCun's MNIST format; gzipped if it ends in
    ``.gz``), checked: magic number, dimensions and exact size. Raises ``ValueError``
    naming the file when it is not a valid idx file."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"idx file {path!r} cannot be read: {type(exc).__name__}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] < 1:
        raise ValueError(f"idx file {path!r} is not an idx file: its magic number is "
                         f"{raw[:4].hex() or 'missing'}, expected 0000 then a type code "
                         f"({', '.join(f'{c:02x}' for c in _IDX_DTYPES)}) and a rank >= 1")
    ndim, dtype = raw[3], _IDX_DTYPES[raw[2]]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"idx file {path!r} is truncated: {len(raw)} bytes, its header "
                         f"alone needs {header}")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"idx file {path!r} holds {len(raw)} bytes, but its header "
                         f"(shape {shape}, {dtype}) says {expected}: truncated or corrupt")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _fashionmnist_dirs(data_dir: str) -> List[str]:
    return [os.path.join(data_dir, "FashionMNIST", "raw"), data_dir, DEBIAN_FASHIONMNIST]


def _find_files(directory: str, names) -> Optional[List[str]]:
    """The path of each of ``names`` in ``directory`` (un-gzipped preferred, else
    ``.gz``), or None when any is missing."""
    found = []
    for name in names:
        for candidate in (name, name + ".gz"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                found.append(path)
                break
        else:
            return None
    return found


def _fashionmnist_missing(data_dir: str) -> str:
    names = [n for pair in FASHIONMNIST_FILES.values() for n in pair]
    where = ", ".join(repr(d) for d in _fashionmnist_dirs(os.path.abspath(data_dir)))
    return (f"dataset 'fashionmnist' was not found: none of {where} holds all four of "
            f"{', '.join(n + '[.gz]' for n in names)}. To get it offline: install Debian's "
            f"package (as root: apt-get install dataset-fashion-mnist, or "
            f"scripts/get-data.sh fashionmnist), which puts them in {DEBIAN_FASHIONMNIST}/; "
            f"or copy the four .gz files into --data-dir (directly or under "
            f"FashionMNIST/raw/); or, with network access, rerun with --download.")


def _split_from_idx(images: str, labels: str) -> Tuple[Tensor, Tensor]:
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise ValueError(f"idx file {images!r}: expected uint8 images [N, H, W], got "
                         f"{x.dtype} of shape {x.shape}")
    if y.ndim != 1 or y.dtype != np.uint8:
        raise ValueError(f"idx file {labels!r}: expected uint8 labels [N], got {y.dtype} "
                         f"of shape {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"idx files {images!r} and {labels!r} disagree: {len(x)} images "
                         f"but {len(y)} labels")
    if len(y) and int(y.max()) > 9:
        raise ValueError(f"idx file {labels!r}: labels must be 0..9, found {int(y.max())}")
    return (torch.from_numpy(np.ascontiguousarray(x[:, None])),
            torch.from_numpy(y.astype(np.int64)))


def _normalised(name: str, xtr: Tensor, ytr: Tensor, xte: Tensor, yte: Tensor,
                num_classes: Optional[int] = None) -> Dataset:
    # Per-channel statistics of the training split only, so no test information leaks in.
    mean, std = _channel_stats(xtr)
    scale = (1.0 / (255.0 * std)).to(torch.float32).view(1, -1, 1, 1)
    shift = (-mean / std).to(torch.float32).view(1, -1, 1, 1)
    if num_classes is None:
        num_classes = int(max(int(ytr.max()), int(yte.max())) + 1)
    return Dataset(name, Split(xtr, ytr, scale, shift), Split(xte, yte, scale, shift),
                   num_classes)


def fashionmnist(data_dir: str = "data", download: bool = False) -> Dataset:
    """FashionMNIST from its idx files, searched offline (see the module docstring); with
    ``download=True`` and no local copy, torchvision fetches it into ``data_dir``."""
    for directory in _fashionmnist_dirs(data_dir):
        train = _find_files(directory, FASHIONMNIST_FILES["train"])
        test = _find_files(directory, FASHIONMNIST_FILES["test"])
        if train and test:
            try:
                xtr, ytr = _split_from_idx(*train)
                xte, yte = _split_from_idx(*test)
            except ValueError as exc:
                raise DatasetUnavailable(f"dataset 'fashionmnist' in {directory!r} is "
                                         f"damaged: {exc}. Replace the file (see "
                                         f"scripts/get-data.sh fashionmnist).") from exc
            return _normalised("fashionmnist", xtr, ytr, xte, yte, num_classes=10)
    if download:
        return _torchvision("fashionmnist", data_dir, download)
    raise DatasetUnavailable(_fashionmnist_missing(data_dir))


def stratified_subset(y: Tensor, n: int, seed: int = LIMIT_TRAIN_SEED) -> Tensor:
    """Sorted indices of ``n`` samples of labels ``y`` with every class's share as in
    ``y`` (largest remainder rounding), drawn with ``seed`` alone."""
    total = int(y.shape[0])
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= total:
        raise ValueError(f"limit_train: n must be an int in [1, {total}] (the training "
                         f"split's size), got {n!r}")
    classes, counts = torch.unique(y, return_counts=True)
    quota = counts.to(torch.float64) * n / total
    take = quota.floor().to(torch.int64)
    # Hand the samples lost to rounding down to the largest remainders (ties: lower class).
    rest = n - int(take.sum())
    if rest:
        order = sorted(range(len(classes)), key=lambda i: (-float(quota[i] - take[i]), i))
        for i in order[:rest]:
            take[i] += 1
    gen = torch.Generator().manual_seed(int(seed))
    chosen = []
    for c, k in zip(classes.tolist(), take.tolist()):
        members = torch.nonzero(y == c).flatten()
        chosen.append(members[torch.randperm(len(members), generator=gen)[:k]])
    return torch.cat(chosen).sort().values


def limit_train(data: Dataset, n: Optional[int], seed: int = LIMIT_TRAIN_SEED) -> Dataset:
    """``data`` with its training split cut to a fixed stratified subset of ``n`` samples
    (``None``, or ``n`` >= the split's size: ``data`` unchanged). The subset depends on
    ``seed`` only, never on a run's seed; the test split and normalisation stay as they are."""
    if n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= len(data.train)):
        return data
    idx = stratified_subset(data.train.y, n, seed)
    tr = data.train
    return Dataset(data.name, Split(tr.x[idx], tr.y[idx], tr.scale, tr.shift), data.test,
                   data.num_classes)


def load_dataset(name: str, data_dir: str = "data", download: bool = False) -> Dataset:
    """The dataset ``name`` (one of :data:`DATASETS`) with its train and test splits.

    Raises :class:`DatasetUnavailable` (a ``RuntimeError``) with instructions when a
    file-based dataset is missing (or damaged) and cannot be downloaded.
    """
    if not isinstance(name, str):
        raise TypeError(f"load_dataset: name must be a str, got {type(name).__name__}")
    if name == "digits":
        return digits()
    if name == "synthetic":
        return synthetic()
    if name == "fashionmnist":
        return fashionmnist(data_dir, download)
    if name in TORCHVISION:
        return _torchvision(name, data_dir, download)
    raise ValueError(f"load_dataset: unknown dataset {name!r}; choose from {list(DATASETS)}")
