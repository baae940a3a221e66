"""DistributedDataParallel on gloo with 2 CPU processes started by the test: each rank records its own passes,
the trace carries the rank, and DDP's all-reduced gradients are bit-identical with and without tracing."""

from __future__ import annotations

import json
import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
import torch.distributed
import torch.multiprocessing as mp

import tracer
from tests import ddp_worker
from tests.fuzzing import TALLY
from tracer.model.serial import digests_from_json

WORLD = 2
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(out: Path, timeout: float = 180.0) -> None:
    """Start WORLD ranks of ddp_worker.run and wait; a hung rank fails the test instead of hanging it."""
    context = mp.start_processes(
        ddp_worker.run, args=(WORLD, free_port(), str(out)), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail(f"the DDP ranks did not finish within {timeout:.0f} s")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    spawn(out)
    return out


def test_ddp_gradients_are_unchanged_by_tracing(ranks: Path) -> None:
    grads = [json.loads((ranks / f"grads-rank{r}.json").read_text()) for r in range(WORLD)]
    for r, g in enumerate(grads):
        assert g["traced"] == g["plain"], f"rank {r}: tracing changed DDP's gradients"
        assert set(g["plain"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert grads[0]["traced"] == grads[1]["traced"]  # all-reduced: every rank ends with the same .grad
    TALLY["DDP ranks compared bit for bit (traced vs untraced)"] += WORLD


def test_each_rank_records_its_own_passes_with_its_rank(ranks: Path) -> None:
    for r in range(WORLD):
        traces = [tracer.load(ranks / f"trace-rank{r}-pass{i}.json") for i in range(1, ddp_worker.STEPS + 1)]
        assert [t.index for t in traces] == [1, 2]
        for t in traces:
            assert t.complete and t.notes == ()
            assert t.rank == r
            assert sum(s.name == "AccumulateGrad" for s in t.steps) == 4
    first = {r: tracer.load(ranks / f"trace-rank{r}-pass1.json") for r in range(WORLD)}
    own = {r: first[r].leaves["model.2.bias"] for r in range(WORLD)}
    # Each rank's pass delivers its own batch's gradient; .grad afterwards holds DDP's average of both.
    assert own[0].grad is not None and own[1].grad is not None and own[0].grad.values != own[1].grad.values
    average = [(a + b) / 2 for a, b in zip(own[0].grad.values, own[1].grad.values, strict=True)]
    for r in range(WORLD):
        total = own[r].grad_total
        assert total is not None and total.values is not None
        assert total.values == pytest.approx(average, rel=1e-6)


def test_the_timeline_puts_the_ranks_side_by_side(ranks: Path) -> None:
    """Each rank's digests (saved by the rank) make one timeline: a row per module and rank, each rank's numbers its
    own gradient before DDP averages it, as its trace recorded it."""
    digests = [d for r in range(WORLD) for d in digests_from_json((ranks / f"digests-rank{r}.json").read_text())]
    assert sorted({(d.rank, d.index) for d in digests}) == [(r, i) for r in range(WORLD) for i in (1, 2)]
    line = tracer.timeline(digests)
    assert line.ranks == (0, 1) and line.passes == (1, 2)
    for r in range(WORLD):
        for i in (1, 2):
            trace = tracer.load(ranks / f"trace-rank{r}-pass{i}.json")
            own = trace.leaves["model.2.bias"].grad
            assert own is not None
            assert line.series("model.2.bias", rank=r).grad_norm[i - 1] == own.norm
    assert line.series("model.2", rank=0).grad_norm != line.series("model.2", rank=1).grad_norm  # each its own batch
    assert not any(m for s in line.modules for m in s.marks)  # alike batches: no rank stands apart
    rows = [t.text for t in ET.fromstring(line.svg()).iter("{http://www.w3.org/2000/svg}text")]
    assert rows.index("model.2 [rank 0]") + 1 == rows.index("model.2 [rank 1]")  # side by side


def test_without_torch_distributed_there_is_no_rank() -> None:
    x = torch.ones(2, requires_grad=True)
    trace = tracer.trace((x * 2).sum())
    assert trace.rank is None and "rank" not in repr(trace)
    assert tracer.load(trace.to_json()).rank is None
