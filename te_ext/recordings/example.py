"""``te-matrix --example``: a spiking network with planted links, and how well a matrix
finds them (ROC AUC, precision at the true number of links), with a figure."""

from __future__ import annotations

from typing import Tuple

import numpy as np


def example_network(n: int = 200, bins: int = 20000, *, p_link: float = 0.015,
                    rate: float = 0.02, weight: Tuple[float, float] = (0.15, 0.35),
                    inhibitory: float = 0.25, inhibition: Tuple[float, float] = (0.6, 0.95),
                    max_delay: int = 5, seed: int = 0):
    """A spiking network with planted excitatory and inhibitory links:
    ``(spikes bool [bins, n], adjacency bool [n, n], link_delay int [n, n],
    link_sign int8 [n, n])``.

    - Each neuron fires with background probability ``rate`` per bin.
    - Links are drawn independently with probability ``p_link``, with no self-links. A
      fraction ``inhibitory`` of them is inhibitory.
    - A link ``i -> j`` has a delay ``d`` of 1..``max_delay`` bins.
    - An excitatory link of weight ``w`` (drawn from ``weight``) makes a spike of ``i`` at
      ``t - d`` raise ``j``'s firing probability at ``t``:
      ``p = 1 - (1 - rate) * prod(1 - w x_i[t - d])``.
    - An inhibitory link of strength ``v`` (drawn from ``inhibition``) multiplies that
      probability by ``1 - v``.
    """
    rng = np.random.default_rng(seed)
    adj = rng.random((n, n)) < p_link
    np.fill_diagonal(adj, False)
    link_delay = np.where(adj, rng.integers(1, max_delay + 1, size=(n, n)), 0)
    inhib = adj & (rng.random((n, n)) < inhibitory)
    link_sign = np.where(adj, np.where(inhib, -1, 1), 0).astype(np.int8)
    w = np.where(adj & ~inhib, rng.uniform(*weight, size=(n, n)), 0.0)
    v = np.where(inhib, rng.uniform(*inhibition, size=(n, n)), 0.0)
    log_keep = np.log1p(-w)   # log(1 - w) per excitatory link
    log_pass = np.log1p(-v)   # log(1 - v) per inhibitory link
    spikes = np.zeros((bins, n), dtype=np.bool_)
    base = np.log1p(-rate)
    noise = rng.random((bins, n))
    exc = [np.where(link_delay == d, log_keep, 0.0) for d in range(1, max_delay + 1)]
    inh = [np.where(link_delay == d, log_pass, 0.0) for d in range(1, max_delay + 1)]
    for t in range(bins):
        lk = np.full(n, base)
        lp = np.zeros(n)
        for d in range(1, min(max_delay, t) + 1):
            src = spikes[t - d]
            if src.any():
                lk += exc[d - 1][src].sum(axis=0)
                lp += inh[d - 1][src].sum(axis=0)
        spikes[t] = noise[t] < -np.expm1(lk) * np.exp(lp)
    return spikes, adj, link_delay, link_sign


def found_links(peak: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """bool [n, n]: the planted links among the ``#links`` highest off-diagonal peaks."""
    n = len(adj)
    off = ~np.eye(n, dtype=bool)
    scores = np.where(off, peak, -np.inf).ravel()
    top = np.argsort(-scores, kind="mergesort")[:int(adj.sum())]
    chosen = np.zeros(n * n, dtype=bool)
    chosen[top] = True
    return chosen.reshape(n, n) & adj


def sign_accuracy(signed: np.ndarray, link_sign: np.ndarray, links: np.ndarray) -> float:
    """Fraction of ``links`` whose sign of ``signed`` is the planted one."""
    if not links.any():
        return float("nan")
    return float((np.sign(signed[links]) == link_sign[links]).mean())


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    npos, nneg = int(labels.sum()), int((~labels).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s), dtype=np.float64)
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = 0.5 * (i + j) + 1.0
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    return float((r[labels].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def precision_at_true_count(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of true links among the ``#links`` highest scores."""
    labels = np.asarray(labels, dtype=bool)
    top = np.argsort(-np.asarray(scores), kind="mergesort")[:int(labels.sum())]
    return float(labels[top].mean()) if len(top) else float("nan")


def plot_example(png: str, peak: np.ndarray, signed: np.ndarray, peak_delay: np.ndarray,
                 adj: np.ndarray, link_sign: np.ndarray, link_delay: np.ndarray, auc: float,
                 prec: float) -> None:
    """Four panels: the planted links with their signs; the peak TE over delays; the signed
    peak (sorted local TE); the histogram of peak delays, planted links against the rest."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    off = ~np.eye(len(adj), dtype=bool)
    fig, ax = plt.subplots(1, 4, figsize=(16, 3.8))
    ax[0].imshow(np.where(adj, np.sign(link_sign), 0), cmap="coolwarm", vmin=-1, vmax=1,
                 interpolation="nearest")
    ax[0].set_title(f"planted links ({int(adj.sum())}; red excites, blue inhibits)")
    shown = np.where(off, peak, 0.0)
    im = ax[1].imshow(shown, cmap="magma", interpolation="nearest",
                      vmax=np.quantile(shown[off], 0.995))
    ax[1].set_title(f"peak TE over delays (bits); AUC {auc:.3f}, precision {prec:.3f}")
    fig.colorbar(im, ax=ax[1], fraction=0.046)
    s = np.where(off, signed, 0.0)
    lim = float(np.quantile(np.abs(s[off]), 0.995)) or 1.0
    im = ax[2].imshow(s, cmap="coolwarm", vmin=-lim, vmax=lim, interpolation="nearest")
    ax[2].set_title("signed peak (sorted local TE, bits)")
    fig.colorbar(im, ax=ax[2], fraction=0.046)
    for a in ax[:3]:
        a.set_xlabel("target j")
        a.set_ylabel("source i")
    edges = np.arange(peak_delay[off].min(), peak_delay[off].max() + 2) - 0.5
    ax[3].hist(peak_delay[off & ~adj], bins=edges, alpha=0.6, label="no link", log=True)
    ax[3].hist(peak_delay[off & adj], bins=edges, alpha=0.8, label="planted link", log=True)
    ax[3].set_xlabel("peak delay (bins)")
    ax[3].set_title(f"planted delays {int(link_delay[adj].min())}-{int(link_delay[adj].max())}")
    ax[3].legend()
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)
