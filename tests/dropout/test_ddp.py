"""The attached model under DistributedDataParallel: two CPU processes (gloo), both gradient
modes; after backward every rank holds the same, finite, all-reduced LoRA gradients."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tiny_lora import build

from hk_tune.dropout import DropoutSpec, attach, compute_loss


def _worker(rank: int, world: int, init: str, grad_mode: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        model, batch, task = build("bert")  # seeded: the same weights on every rank
        spec = DropoutSpec.from_dict({"preset": "hiddenkey", "consistency.grad": grad_mode})
        handle = attach(model, spec)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        ddp.train()
        torch.manual_seed(100 + rank)  # each rank its own masks and its own batch
        batch = {**batch, "input_ids": torch.randint(2, 120, batch["input_ids"].shape)}
        loss = compute_loss(ddp, batch, handle, task)
        loss.loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])
        gathered = [torch.empty_like(grads) for _ in range(world)]
        dist.all_gather(gathered, grads)
        if rank == 0:
            torch.save({"grads": gathered, "loss": loss.loss.detach()}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("grad_mode", ["one", "both"])
def test_ddp_two_processes(tmp_path, grad_mode):
    out = str(tmp_path / "result.pt")
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_worker, args=(2, init, grad_mode, out), nprocs=2, join=True)
    result = torch.load(out)
    first, second = result["grads"]
    assert torch.isfinite(first).all() and first.abs().sum() > 0
    assert torch.equal(first, second)
    assert torch.isfinite(result["loss"])
