"""TEFeedback under DDP (gloo, 2 CPU processes): each rank's window is a replicate, the
integer counts are pooled, and every rank applies the same T, equal to the single-process
TE over the pooled replicates."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import te_ext

WORLD = 2
WINDOW = 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, out_dir, pair_fraction):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)  # same initial weights on every rank
        model = nn.Sequential(nn.Linear(10, 7), nn.ReLU(), nn.Linear(7, 3))
        fb = te_ext.TEFeedback(model[2], window=WINDOW, target_transform="softmax",
                               target_threshold=0.3, pair_fraction=pair_fraction, seed=1)
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(100 + rank)  # each rank its own data
        for _ in range(6):
            x, y = torch.randn(16, 10, generator=g), torch.randint(0, 3, (16,), generator=g)
            opt.zero_grad()
            nn.functional.cross_entropy(ddp(x), y).backward()
            opt.step()
        src, tgt = fb.window.window_series()
        torch.save({"te": fb.te, "src": src, "tgt": tgt, "pairs": fb.pairs,
                    "weight": model[2].weight.detach()}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("pair_fraction", [1.0, 0.5])
def test_ddp_ranks_share_pooled_te(tmp_path, pair_fraction):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    mp.spawn(_worker, args=(_free_port(), str(tmp_path), pair_fraction), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert torch.equal(ranks[0]["te"], ranks[1]["te"])
    assert torch.equal(ranks[0]["weight"], ranks[1]["weight"])  # DDP and T agree
    assert not torch.equal(ranks[0]["src"], ranks[1]["src"])  # the windows differ
    pooled = te_ext.transfer_entropy(torch.stack([r["src"] for r in ranks]),
                                     torch.stack([r["tgt"] for r in ranks])).to(torch.float32)
    if pair_fraction < 1:
        mask = torch.zeros_like(pooled, dtype=torch.bool)
        mask[ranks[0]["pairs"][:, 0], ranks[0]["pairs"][:, 1]] = True
        pooled = torch.where(mask, pooled, torch.zeros_like(pooled))
    assert torch.equal(ranks[0]["te"], pooled)
    single = te_ext.transfer_entropy(ranks[0]["src"], ranks[0]["tgt"]).to(torch.float32)
    assert not torch.equal(single, torch.stack([pooled]).squeeze(0))  # pooling mattered
