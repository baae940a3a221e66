"""TensorBoard export: the event files, read back with tensorboard's own reader, hold the right tags and steps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import tracer
from tracer.model.digest import LeafDigest, PassDigest
from tracer.record.tensorboard_export import write_tensorboard

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read_back(logdir: Path) -> object:
    reader = event_accumulator.EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0})
    reader.Reload()
    return reader


def digest(index: int, norms: dict[str, float], *, rank: int | None = None, update: float | None = None) -> PassDigest:
    leaves = tuple(
        LeafDigest(
            name=name,
            module=None,
            shape=(3,),
            grad_norm=norm,
            grad_max_abs=norm,
            zeros=0.0,
            nan=int(math.isnan(norm)),
            inf=0,
            value_norm=2.0,
            update_norm=update,
        )
        for name, norm in norms.items()
    )
    return PassDigest(index=index, label=None, rank=rank, leaves=leaves, flags=(), kept=False)


def test_scalars_have_one_tag_per_leaf_and_the_pass_index_as_step(tmp_path: Path) -> None:
    digests = [digest(i, {"fc.weight": 0.5 * i, "fc.bias": 1.0 / i}, update=None if i == 1 else 0.2) for i in (1, 2, 5)]
    written = write_tensorboard(tmp_path, digests)
    assert written.scalars == 3 * 2 + 2 * 2 and written.histograms == 0
    reader = read_back(tmp_path)
    tags = reader.Tags()["scalars"]  # type: ignore[attr-defined]
    assert set(tags) == {"grad_norm/fc.weight", "grad_norm/fc.bias", "update_ratio/fc.weight", "update_ratio/fc.bias"}
    weight = reader.Scalars("grad_norm/fc.weight")  # type: ignore[attr-defined]
    assert [e.step for e in weight] == [1, 2, 5]
    assert [e.value for e in weight] == [0.5, 1.0, 2.5]
    assert [e.step for e in reader.Scalars("update_ratio/fc.bias")] == [2, 5]  # type: ignore[attr-defined]
    assert reader.Scalars("update_ratio/fc.bias")[0].value == pytest.approx(0.1)  # type: ignore[attr-defined]
    assert any("no pass was kept whole" in n for n in written.notes)


def test_each_rank_writes_its_own_folder(tmp_path: Path) -> None:
    written = write_tensorboard(tmp_path, [digest(1, {"w": 1.0}, rank=0), digest(1, {"w": 3.0}, rank=1)])
    assert written.logdirs == (tmp_path / "rank0", tmp_path / "rank1")
    assert [e.value for e in read_back(tmp_path / "rank1").Scalars("grad_norm/w")] == [3.0]  # type: ignore[attr-defined]


def test_a_recorded_loop_reads_back_with_torch_norms_and_histograms_of_kept_values(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.randn(8, 3)
    norms = []
    with tracer.record(model=model, keep="first,last") as rec:
        for _ in range(6):
            optimiser.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            norms.append({n: float(p.grad.norm()) for n, p in model.named_parameters()})  # type: ignore[union-attr]
            optimiser.step()
    written = rec.to_tensorboard(tmp_path)
    reader = read_back(tmp_path)
    names = [n for n, _ in model.named_parameters()]
    leaf_names = [d.name for d in rec.digests[0].leaves]
    assert len(leaf_names) == len(names)
    for leaf_name in leaf_names:
        short = leaf_name.rsplit(".", 1)[-1]  # weight / bias, however the model's root is named
        events = reader.Scalars(f"grad_norm/{leaf_name}")  # type: ignore[attr-defined]
        assert [e.step for e in events] == [1, 2, 3, 4, 5, 6]
        assert [e.value for e in events] == pytest.approx([n[short] for n in norms], rel=1e-6)
    # histograms: the kept passes (first, last), whose leaves' values were kept (12 and 3 elements)
    histogram_tags = reader.Tags()["histograms"]  # type: ignore[attr-defined]
    assert sorted(histogram_tags) == sorted(f"grad/{n}" for n in leaf_names)
    for tag in histogram_tags:
        assert [e.step for e in reader.Histograms(tag)] == [1, 6]  # type: ignore[attr-defined]
    assert written.histograms == 4


def test_leaves_whose_values_were_not_kept_get_no_histogram_and_a_note(tmp_path: Path) -> None:
    w = torch.randn(100, requires_grad=True)
    with tracer.record(max_values=10) as rec:
        (w * 2).sum().backward()
    written = rec.to_tensorboard(tmp_path)
    assert written.histograms == 0
    assert any("no histogram for w (100 elements)" in n and "capture='full'" in n for n in written.notes)
    assert read_back(tmp_path).Tags()["histograms"] == []  # type: ignore[attr-defined]
