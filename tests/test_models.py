"""The paper's CNNs (te_ext.experiments.models): published shapes and settings, one TE training step each."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from te_ext import TEFeedback
from te_ext.experiments import models
from te_ext.experiments.models import PRESETS, build_model, presets_markdown

# (in, out) of the te_layer, and the whole fully connected chain, as published
# (digits is ours; mnist reuses the FashionMNIST network).
PUBLISHED_FC = {
    "usps": [576, 144, 10],
    "fashionmnist": [2304, 600, 120, 10],
    "mnist": [2304, 600, 120, 10],
    "cifar10": [1024, 10],
    "stl10": [256, 10],
}


def _linears(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def _convs(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_preset_names_and_te_kwargs():
    assert set(PRESETS) == {"digits", "usps", "fashionmnist", "mnist", "cifar10", "svhn", "stl10"}
    for name, p in PRESETS.items():
        assert p.name == name
        kw = p.te_kwargs()
        assert set(kw) == {"window", "every", "source_threshold", "target_threshold",
                           "target_transform", "rule", "pair_fraction"}
        assert (kw["rule"], kw["every"], kw["source_threshold"], kw["target_threshold"],
                kw["target_transform"]) == ("paper", 1, 0.0, 0.5, "softmax")
        assert p.notes, f"{name}: unpublished choices must be recorded in notes"
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("name, expected", [
    ("usps", dict(input_shape=(1, 16, 16), lr=0.008, batch_size=100, window=500)),
    ("fashionmnist", dict(input_shape=(1, 28, 28), lr=0.008, batch_size=100, window=500)),
    ("cifar10", dict(input_shape=(3, 32, 32), lr=0.01, momentum=0.9, weight_decay=5e-4,
                     batch_size=128, epochs=35, window=512)),
    ("svhn", dict(input_shape=(3, 32, 32), lr=0.001, momentum=0.9, weight_decay=0.1,
                  batch_size=200, epochs=150, window=4096)),
    ("stl10", dict(input_shape=(3, 96, 96), lr=0.001, momentum=0.9, batch_size=200,
                   epochs=150, window=4096)),
    ("digits", dict(input_shape=(1, 8, 8))),
])
def test_published_settings(name, expected):
    p = PRESETS[name]
    for key, value in expected.items():
        assert getattr(p, key) == value, (name, key)


def test_published_architectures():
    for name, chain in PUBLISHED_FC.items():
        m = build_model(name)
        lin = _linears(m)
        assert [lin[0].in_features] + [x.out_features for x in lin] == chain, name
        assert m.te_layer is lin[-1]
    cifar = [c.out_channels for c in _convs(build_model("cifar10"))]
    assert len(cifar) == 7 and cifar[0] == 128 and cifar[-1] == 1024 and cifar == sorted(cifar)
    assert len(_convs(build_model("stl10"))) == 6
    assert len(_convs(build_model("usps"))) == 2
    assert [c.out_channels for c in _convs(build_model("usps"))] == [32, 64]


@pytest.mark.parametrize("name", list(PRESETS))
def test_one_te_step_at_real_shape(name):
    """Each network trains a step with TEFeedback on FakeData images of its input shape."""
    p = PRESETS[name]
    torch.manual_seed(0)
    model = build_model(name)
    te_in, te_out = model.te_layer.in_features, model.te_layer.out_features
    if name in PUBLISHED_FC:
        assert (te_in, te_out) == tuple(PUBLISHED_FC[name][-2:])
    fake = torchvision.datasets.FakeData(size=4, image_size=p.input_shape, num_classes=10,
                                         transform=torchvision.transforms.ToTensor(),
                                         random_offset=0)
    x = torch.stack([fake[i][0] for i in range(4)])
    y = torch.tensor([int(fake[i][1]) for i in range(4)])
    assert x.shape == (4,) + p.input_shape
    opt = torch.optim.SGD(model.parameters(), lr=p.lr, momentum=p.momentum,
                          weight_decay=p.weight_decay)
    kw = dict(p.te_kwargs(), window=4)  # two batches of 2 fill it
    with TEFeedback(model.te_layer, **kw, seed=0) as fb:
        model.train()
        for s in (0, 2):
            out = model(x[s:s + 2])
            assert out.shape == (2, p.num_classes)
            loss = nn.functional.cross_entropy(out, y[s:s + 2])
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert torch.isfinite(loss)
        assert fb.te is not None and fb.te.shape == (te_in, te_out)
        assert fb.te.dtype == torch.float32 and bool((fb.te >= 0).all())
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (4, p.num_classes)


def test_te_layer_input_is_post_relu():
    """source_threshold 0 presumes a ReLU output as the te_layer's input."""
    torch.manual_seed(0)
    for name in ("digits", "usps"):
        model = build_model(name).eval()
        seen = []
        h = model.te_layer.register_forward_hook(lambda m, i, o: seen.append(i[0]))
        with torch.no_grad():
            model(torch.randn((16,) + PRESETS[name].input_shape))
        h.remove()
        assert bool((seen[0] >= 0).all()) and bool((seen[0] == 0).any())


def test_build_model_seeded_and_errors():
    torch.manual_seed(3)
    a = build_model("digits").state_dict()
    torch.manual_seed(3)
    b = build_model("digits").state_dict()
    torch.manual_seed(4)
    c = build_model("digits").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    with pytest.raises(ValueError, match="name"):
        build_model("imagenet")
    with pytest.raises(TypeError, match="name"):
        build_model(3)  # type: ignore[arg-type]


def test_presets_markdown_matches_code():
    md = presets_markdown()
    rows = [line for line in md.splitlines() if line.startswith("| `")]
    assert len(rows) == len(PRESETS)
    for name, p in PRESETS.items():
        row = next(r for r in rows if r.startswith(f"| `{name}`"))
        assert f"| {p.lr:g} |" in row and f"| {p.window} |" in row
        assert f"| {p.batch_size} |" in row
    assert "Linear 576→144→10" in md and "Linear 2304→600→120→10" in md
    assert models.PRESETS is PRESETS


def _readme_presets_block() -> str:
    """The training guide's preset table and its TE-settings line: the block after "The presets"."""
    readme = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("The presets"))
    first = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("| preset"))
    last = next(i for i in range(first, len(lines)) if lines[i].startswith("TE settings"))
    return "\n".join(lines[first:last + 1])


def test_docs_preset_table_is_presets_markdown():
    # models.py says the training guide shows this exact table: hold it to that.
    block = _readme_presets_block()
    assert block.count("\n| `") == len(PRESETS)
    assert block == presets_markdown()
