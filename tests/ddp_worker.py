"""One rank of the DDP test (tests/test_ddp.py): trains two identical DDP models, untraced and traced, and saves
each's gradients, the traces and the passes' digests, so the test can compare them bit for bit across runs and ranks
and put the ranks' timelines side by side."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import tracer
from tracer.model.serial import digests_to_json

STEPS = 2


def _model() -> torch.nn.Module:
    torch.manual_seed(0)  # the same start on both ranks (DDP also broadcasts rank 0's parameters)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def _train(traced: bool, rank: int) -> tuple[dict[str, str], tracer.Recorder | None]:
    model = _model()
    ddp = DistributedDataParallel(model)
    data = torch.randn(6, 4, generator=torch.Generator().manual_seed(100 + rank))  # each rank its own batch
    with tracer.record(names={"model": model}) if traced else contextlib.nullcontext() as rec:
        for _ in range(STEPS):
            ddp(data).pow(2).mean().backward()
    grads = {n: p.grad.numpy().tobytes().hex() for n, p in model.named_parameters() if p.grad is not None}
    return grads, rec


def run(rank: int, world_size: int, port: int, out: str) -> None:
    """torch.multiprocessing entry point: rank is passed first."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        plain, _ = _train(traced=False, rank=rank)
        traced, rec = _train(traced=True, rank=rank)
        assert rec is not None
        folder = Path(out)
        for t in rec.traces:
            (folder / f"trace-rank{rank}-pass{t.index}.json").write_text(t.to_json())
        (folder / f"digests-rank{rank}.json").write_text(digests_to_json(rec.digests))
        (folder / f"grads-rank{rank}.json").write_text(json.dumps({"plain": plain, "traced": traced}))
    finally:
        dist.destroy_process_group()
