"""TEFeedback: the TE it computes, the two update rules, hooks, state and configuration."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

import te_ext
from te_ext import TEFeedback


def _mlp(seed=0, n_in=12, hidden=9, out=4):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, out))


def _batches(n, batch, n_in=12, out=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, n_in, generator=g), torch.randint(0, out, (batch,), generator=g))
            for _ in range(n)]


def _step(model, opt, x, y):
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


class _Recorder:
    """Records the (source, target) series of a Linear independently of TEFeedback."""

    def __init__(self, linear, transform):
        self.src, self.tgt = [], []
        self.h = linear.register_forward_hook(self._hook)
        self.transform = transform

    def _hook(self, mod, inp, out):
        if mod.training and torch.is_grad_enabled():
            self.src.append(inp[0].detach().clone())
            self.tgt.append(self.transform(out.detach()).clone())

    def te(self, window, source_threshold, target_threshold, **kw):
        s = torch.cat(self.src)[-window:] > source_threshold
        t = torch.cat(self.tgt)[-window:] > target_threshold
        return te_ext.transfer_entropy(s, t, **kw)


def test_te_matches_transfer_entropy_over_window():
    model = _mlp()
    rec = _Recorder(model[2], lambda o: torch.softmax(o, -1))
    fb = TEFeedback(model[2], window=50, target_transform="softmax", target_threshold=0.3)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for i, (x, y) in enumerate(_batches(12, 16)):
        _step(model, opt, x, y)
        if 16 * (i + 1) < 50:
            assert fb.te is None
        else:
            expect = rec.te(50, 0.0, 0.3)
            assert fb.te.dtype == torch.float32 and fb.te.shape == (9, 4)
            assert torch.equal(fb.te, expect.to(torch.float32))
    assert float(fb.te.max()) > 0  # the check above compared something non-trivial


def test_paper_rule_scales_gradient_exactly():
    model = _mlp()
    fb = TEFeedback(model[2], window=40, target_transform="softmax", target_threshold=0.3)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    data = _batches(6, 16)
    for x, y in data[:-1]:
        _step(model, opt, x, y)
    x, y = data[-1]
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    scaled = model[2].weight.grad.clone()
    te = fb.te.clone()
    fb.remove()
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    plain = model[2].weight.grad
    # grad W[j, i] <- grad W[j, i] * (1 + T[i, j])
    assert torch.equal(scaled, plain * (1 + te.t()))
    assert not torch.equal(scaled, plain)
    # The first layer is untouched.
    assert model[0].weight.grad is not None


def _authors_numpy(w, te_prev, te_now):
    d = te_prev.astype(np.float64) - te_now.astype(np.float64)
    d[d < 1e-8] = 0.0
    d[d > 10] = 1.0
    return (np.eye(d.shape[0]) - d).T @ w.astype(np.float64)


def test_authors_code_rule_matches_numpy():
    model = _mlp(out=5)
    lin = model[2]
    fb = TEFeedback(lin, rule="authors_code", window=24, target_threshold=0.25)
    assert fb.window.num_source == 5 and fb.window.num_target == 5  # logits -> softmax
    rec = _Recorder(lin, lambda o: torch.softmax(o, -1))
    rec_src = []
    lin.register_forward_hook(lambda m, i, o: rec_src.append(o.detach().clone()) if m.training else None)
    history, checked = [], 0
    for x, _ in _batches(30, 8, out=5, seed=3):
        w_before = lin.weight.detach().clone()
        pending = fb._pending_mix is not None
        out = model(x)
        out.sum().backward()  # grad enabled, no optimizer: only the rule moves W
        if pending:
            te_prev, te_now = history[-2], history[-1]
            expect = _authors_numpy(w_before.numpy(), te_prev.numpy(), te_now.numpy())
            np.testing.assert_allclose(lin.weight.detach().numpy(), expect, rtol=0, atol=1e-6)
            checked += int(not np.allclose(expect, w_before.numpy()))
        else:
            assert torch.equal(lin.weight.detach(), w_before)
        if fb.te is not None:
            # Source = logits, target = softmax(logits): TE over the window.
            s = torch.cat(rec_src)[-24:] > 0.0
            t = torch.cat(rec.tgt)[-24:] > 0.25
            assert torch.equal(fb.te, te_ext.transfer_entropy(s, t).to(torch.float32))
            history.append(fb.te.clone())
    assert checked > 0, "no refresh changed the weights; the test compared nothing"


def test_hooks_inactive_in_eval_and_no_grad():
    model = _mlp()
    fb = TEFeedback(model[2], window=10)
    x = torch.randn(8, 12)
    model.eval()
    model(x)
    model.train()
    with torch.no_grad():
        model(x)
    assert fb.steps == 0 and fb.window.seen == 0
    model(x)
    assert fb.steps == 1 and fb.window.seen == 8


def test_remove_restores_plain_training_bit_for_bit():
    a = _mlp()
    fb = TEFeedback(a[2], window=20, target_transform="softmax")
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    data = _batches(8, 16)
    for x, y in data[:4]:
        _step(a, opt_a, x, y)
    assert fb.te is not None
    fb.remove()
    b = copy.deepcopy(a)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # no shared momentum buffers
    for x, y in data[4:]:
        _step(a, opt_a, x, y)
        _step(b, opt_b, x, y)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not a[2]._forward_hooks and not a[2]._forward_pre_hooks


def test_context_manager_removes_hooks():
    model = _mlp()
    with TEFeedback(model[2], window=10) as fb:
        model(torch.randn(4, 12))
    model(torch.randn(4, 12))
    assert fb.steps == 1


def test_every_refreshes_periodically():
    model = _mlp()
    fb = TEFeedback(model[2], window=16, every=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    refreshed = []
    last = 0
    for x, y in _batches(12, 8):
        _step(model, opt, x, y)
        refreshed.append(fb.refreshes > last)
        last = fb.refreshes
    # Full from step 2 (16 samples); refresh on steps 1, 4, 7, 10 (0-based: every 3rd) once full.
    assert refreshed == [False, False, False, True, False, False, True, False, False, True, False, False]


def test_pair_fraction_uses_seeded_subset():
    model = _mlp()
    rec = _Recorder(model[2], lambda o: o)
    fb = TEFeedback(model[2], window=40, pair_fraction=0.25, seed=5, target_threshold=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for x, y in _batches(4, 16):
        _step(model, opt, x, y)
    full = rec.te(40, 0.0, 0.0).to(torch.float32)
    mask = torch.zeros_like(full, dtype=torch.bool)
    mask[fb.pairs[:, 0], fb.pairs[:, 1]] = True
    assert int(mask.sum()) == round(0.25 * 36)
    assert torch.equal(fb.te[mask], full[mask]) and bool((fb.te[~mask] == 0).all())
    again = TEFeedback(_mlp()[2], window=40, pair_fraction=0.25, seed=5)
    assert torch.equal(again.pairs, fb.pairs)


def test_state_dict_resume_is_exact():
    data = _batches(10, 16)

    def run(model, opt, fb, batches):
        for x, y in batches:
            _step(model, opt, x, y)

    a = _mlp()
    fa = TEFeedback(a[2], window=30, target_transform="softmax")
    oa = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    run(a, oa, fa, data)

    b = _mlp()
    fb_ = TEFeedback(b[2], window=30, target_transform="softmax")
    ob = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    run(b, ob, fb_, data[:5])
    saved = copy.deepcopy({"model": b.state_dict(), "opt": ob.state_dict(), "fb": fb_.state_dict()})

    c = _mlp(seed=99)
    fc = TEFeedback(c[2], window=30, target_transform="softmax")
    oc = torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9)
    c.load_state_dict(saved["model"])
    oc.load_state_dict(saved["opt"])
    fc.load_state_dict(saved["fb"])
    run(c, oc, fc, data[5:])
    for pa, pc in zip(a.parameters(), c.parameters()):
        assert torch.equal(pa, pc)
    assert torch.equal(fa.te, fc.te)
    with pytest.raises(ValueError, match="configured"):
        TEFeedback(_mlp()[2], window=31).load_state_dict(saved["fb"])


def test_several_feedbacks_coexist():
    model = _mlp()
    r0 = _Recorder(model[0], lambda o: o)
    r2 = _Recorder(model[2], lambda o: torch.softmax(o, -1))
    f0 = TEFeedback(model[0], window=32, target_threshold=0.0)
    f2 = TEFeedback(model[2], window=32, target_transform="softmax", target_threshold=0.3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in _batches(5, 16):
        _step(model, opt, x, y)
    assert torch.equal(f0.te, r0.te(32, 0.0, 0.0).to(torch.float32))
    assert torch.equal(f2.te, r2.te(32, 0.0, 0.3).to(torch.float32))


def test_amp_autocast_cpu_runs_and_scales():
    """Under CPU autocast (bf16) the weight's gradient is the plain gradient times (1 + T)^T."""
    model, plain = _mlp(), _mlp()
    # Threshold 0.25 on a 4-way softmax: targets fire from the start, so T > 0 early.
    fb = TEFeedback(model[2], window=16, target_transform="softmax", target_threshold=0.25)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for x, y in _batches(4, 8):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert fb.te is not None and torch.isfinite(model[2].weight).all()
    # One more step, beside a hook-free copy of the same weights on the same batch.
    plain.load_state_dict(model.state_dict())
    x, y = _batches(1, 8, seed=5)[0]
    grads = []
    for net in (model, plain):
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x)
            assert out.dtype == torch.bfloat16  # autocast really ran the Linear in bf16
            nn.functional.cross_entropy(out, y).backward()
        grads.append(net[2].weight.grad.clone())
    scale = (1.0 + fb.te).t()  # T of this very step: the forward hook refreshed it
    assert fb.te.max() > 0.01, "T is ~0: the test would not see the scaling"
    assert not torch.allclose(grads[0], grads[1])
    torch.testing.assert_close(grads[0], grads[1] * scale, rtol=1e-6, atol=0)


def test_torch_compile_smoke():
    # Dynamo graph-breaks around the Python hooks (they keep Python-side state);
    # the compiled model must still feed the window and compute the same TE.
    torch._dynamo.reset()
    eager, compiled_src = _mlp(), _mlp()
    fe = TEFeedback(eager[2], window=24, target_transform="softmax")
    fc = TEFeedback(compiled_src[2], window=24, target_transform="softmax")
    compiled = torch.compile(compiled_src, backend="aot_eager")
    oe = torch.optim.SGD(eager.parameters(), lr=0.05)
    oc = torch.optim.SGD(compiled_src.parameters(), lr=0.05)
    for x, y in _batches(4, 8):
        _step(eager, oe, x, y)
        _step(compiled, oc, x, y)
    assert fc.steps == fe.steps == 4
    torch.testing.assert_close(fc.te, fe.te)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(window=1), ValueError, "window must be > max"),
    (dict(window=2, k=2), ValueError, "window must be > max"),
    (dict(window=2.5), TypeError, "window must be an int"),
    (dict(every=0), ValueError, "every must be >= 1"),
    (dict(source_threshold="0"), TypeError, "source_threshold must be a real number"),
    (dict(target_threshold=None), TypeError, "target_threshold must be a real number"),
    (dict(target_threshold=float("nan")), ValueError, "target_threshold must not be NaN"),
    (dict(rule="hebbian"), ValueError, "rule must be one of"),
    (dict(target_transform="tanh"), ValueError, "target_transform must be None"),
    (dict(target_transform=3), TypeError, "target_transform must be None, a str or a callable"),
    (dict(rule="authors_code", target_transform="sigmoid"), ValueError, "authors_code"),
    (dict(pair_fraction=0.0), ValueError, r"pair_fraction must be in \(0, 1\]"),
    (dict(pair_fraction=1.5), ValueError, r"pair_fraction must be in \(0, 1\]"),
    (dict(k=0), ValueError, "k must be >= 1"),
    (dict(seed=-1), ValueError, "seed must be >= 0"),
])
def test_bad_configuration(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        TEFeedback(nn.Linear(4, 3), **kwargs)


def test_non_linear_module_rejected():
    with pytest.raises(TypeError, match="linear must be an nn.Linear"):
        TEFeedback(nn.Conv2d(1, 2, 3))


def test_feedback_on_device_equals_cpu(device):
    cpu_model = _mlp()
    dev_model = copy.deepcopy(cpu_model).to(device)
    f_cpu = TEFeedback(cpu_model[2], window=40, target_transform="softmax", target_threshold=0.3)
    f_dev = TEFeedback(dev_model[2], window=40, target_transform="softmax", target_threshold=0.3)
    for x, _ in _batches(4, 16):
        cpu_model(x).sum().backward()
        dev_model(x.to(device)).sum().backward()
    assert f_dev.te.device.type == torch.device(device).type
    assert torch.equal(f_cpu.window.counts, f_dev.window.counts.cpu())
    torch.testing.assert_close(f_cpu.te, f_dev.te.cpu(), rtol=0, atol=1e-6)
    torch.testing.assert_close(cpu_model[2].weight.grad, dev_model[2].weight.grad.cpu())
