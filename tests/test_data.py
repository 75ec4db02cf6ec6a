"""Datasets (te_ext.experiments.data): the digits split, the synthetic task, torchvision loading and errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from te_ext.experiments.data import (DatasetUnavailable, digits, epoch_order, load_dataset, synthetic,
                         TORCHVISION)
from te_ext.experiments import data as data_mod
from te_ext.experiments.models import build_model


def _rows(x: torch.Tensor) -> np.ndarray:
    a = x.reshape(len(x), -1).numpy()
    return a[np.lexsort(a.T[::-1])]


def test_digits_split_is_a_stratified_deterministic_partition():
    from sklearn.datasets import load_digits

    full = load_digits()
    d = digits()
    assert d.train.x.shape == (1437, 1, 8, 8) and d.test.x.shape == (360, 1, 8, 8)
    assert d.train.x.dtype == torch.float32 and d.train.y.dtype == torch.int64
    assert float(d.train.x.min()) == 0.0 and float(d.train.x.max()) == 1.0
    # A partition of the original samples (load_digits has no duplicate images, so the
    # rows identify the samples): train + test is the whole set, each sample once.
    assert len(np.unique(full.data, axis=0)) == len(full.data)
    both = torch.cat([d.train.x, d.test.x]) * 16
    np.testing.assert_array_equal(_rows(both), _rows(torch.from_numpy(full.data).float()))
    labels = torch.cat([d.train.y, d.test.y]).sort().values
    np.testing.assert_array_equal(labels.numpy(), np.sort(full.target))
    # Stratified: every class has 20% (to rounding) of its samples in the test split.
    for c in range(10):
        total = int((full.target == c).sum())
        assert abs(int((d.test.y == c).sum()) - 0.2 * total) <= 1, c
    again = digits()
    assert torch.equal(again.train.x, d.train.x) and torch.equal(again.test.y, d.test.y)
    assert load_dataset("digits").input_shape == (1, 8, 8)


@pytest.fixture
def one_thread():
    # A tiny net gains nothing from intra-op threads, and on a busy 2-core machine two
    # threads waiting for each other make it many times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_synthetic_is_deterministic_and_learnable(one_thread):
    a, b = synthetic(), synthetic()
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(synthetic(seed=1).train.x, a.train.x)
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10
    assert int(a.train.y.bincount().min()) == 60  # balanced
    torch.manual_seed(0)
    model = build_model("digits")  # the network the CLI uses on synthetic
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(8):
        order = epoch_order(0, epoch, len(a.train))
        for s in range(0, len(order), 32):
            xb, yb = a.train.batch(order[s:s + 32])
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    with torch.no_grad():
        acc = (model(a.test.x).argmax(1) == a.test.y).float().mean().item()
    assert acc > 0.85, acc  # chance is 0.1


def test_synthetic_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_train"):
        synthetic(n_train=0)
    with pytest.raises(ValueError, match="noise"):
        synthetic(noise=-1.0)


def test_epoch_order_depends_on_seed_and_epoch_only():
    p = epoch_order(3, 5, 100)
    assert sorted(p.tolist()) == list(range(100))
    torch.manual_seed(123)
    torch.rand(7)
    assert torch.equal(epoch_order(3, 5, 100), p)  # global RNG state does not matter
    assert not torch.equal(epoch_order(3, 6, 100), p)
    assert not torch.equal(epoch_order(4, 5, 100), p)


@pytest.mark.parametrize("name", TORCHVISION)
def test_missing_torchvision_dataset_says_how_to_get_it(name, tmp_path, monkeypatch):
    # FashionMNIST is also looked for at Debian's path, which may be installed here.
    monkeypatch.setattr(data_mod, "DEBIAN_FASHIONMNIST", str(tmp_path / "no-debian"))
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset(name, data_dir=str(tmp_path), download=False)
    msg = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "--download" in msg and str(tmp_path) in msg and name in msg


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(TypeError, match="name"):
        load_dataset(None)  # type: ignore[arg-type]


def _write_idx(path: str, array: np.ndarray) -> None:
    # The MNIST idx format: magic (0, 0, dtype 0x08 = uint8, ndim), big-endian sizes, data.
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, array.ndim]))
        f.write(np.asarray(array.shape, dtype=">i4").tobytes())
        f.write(array.astype(np.uint8).tobytes())


def test_torchvision_dataset_from_local_files(tmp_path):
    """A local MNIST (fake images in the real file format) loads without network, its test
    split comes from the test files, and batches are standardised with training statistics."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    train_x = rng.integers(0, 256, (50, 28, 28))
    test_x = rng.integers(0, 128, (20, 28, 28))
    _write_idx(os.path.join(raw, "train-images-idx3-ubyte"), train_x)
    _write_idx(os.path.join(raw, "train-labels-idx1-ubyte"), np.arange(50) % 10)
    _write_idx(os.path.join(raw, "t10k-images-idx3-ubyte"), test_x)
    _write_idx(os.path.join(raw, "t10k-labels-idx1-ubyte"), np.arange(20) % 10)
    d = load_dataset("mnist", data_dir=str(tmp_path))
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert len(d.train) == 50 and len(d.test) == 20
    np.testing.assert_array_equal(d.test.x[:, 0].numpy(), test_x)
    xb, yb = d.train.batch(torch.arange(50))
    assert xb.dtype == torch.float32 and yb.tolist() == [i % 10 for i in range(50)]
    assert abs(float(xb.mean())) < 1e-4 and abs(float(xb.std(unbiased=False)) - 1) < 1e-4
    expected = (train_x / 255.0 - (train_x / 255.0).mean()) / (train_x / 255.0).std()
    np.testing.assert_allclose(xb[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)
