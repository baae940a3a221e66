"""Recording a training loop: unchanged results, a digest for every pass, keep= policies, bounded memory."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import tracer
from tracer.analyse import health as health_module
from tracer.model import digest as digest_module
from tracer.model.errors import TraceFormatError
from tracer.model.pass_selection import PassSelectionError, parse_pass_selection
from tracer.model.serial import digests_from_json, digests_to_json
from tracer.record import pass_recorder

ROOT = Path(__file__).resolve().parent.parent


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 24), torch.nn.Tanh(), torch.nn.Linear(24, 3)
    )


def _batches(steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 16, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(steps)]


def _train(
    model: torch.nn.Module, batches: list[Any], *, record: dict[str, Any] | None = None, nan_at: int | None = None
) -> tuple[Any, list[dict[str, float]], list[dict[str, float]]]:
    """SGD with momentum over the batches; per step the gradient norms and the update norms torch gives."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    grad_norms: list[dict[str, float]] = []
    updates: list[dict[str, float]] = []
    previous = {k: p.detach().clone() for k, p in model.named_parameters()}

    def loop() -> None:
        for step, (x, y) in enumerate(batches, start=1):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            if step == nan_at:
                loss = loss * torch.tensor(float("nan"))
            loss.backward()
            grad_norms.append({k: float(p.grad.norm()) for k, p in model.named_parameters()})
            updates.append({k: float((p.detach() - previous[k]).norm()) for k, p in model.named_parameters()})
            previous.update({k: p.detach().clone() for k, p in model.named_parameters()})
            if step != nan_at:
                opt.step()

    if record is None:
        loop()
        return None, grad_norms, updates
    with tracer.record(**record) as rec:
        loop()
    return rec, grad_norms, updates


def test_recorded_loop_is_bit_identical_and_digests_every_pass(hooks: str) -> None:
    batches = _batches(200)
    plain = _mlp()
    _train(plain, batches)
    model = _mlp()
    rec, grad_norms, updates = _train(model, batches, record={"model": model, "keep": "every:50,last"})
    for (name, a), b in zip(plain.named_parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b), name  # recording changed nothing, bit for bit
    digests = rec.digests
    assert [d.index for d in digests] == list(range(1, 201))
    assert [t.index for t in rec.traces] == [50, 100, 150, 200]
    assert [d.index for d in digests if d.kept] == [50, 100, 150, 200]
    for d, norms, upd in zip(digests, grad_norms, updates, strict=True):
        assert d.flags == ()
        for leaf in d.leaves:
            key = leaf.name.removeprefix("model.")
            assert leaf.grad_norm == pytest.approx(norms[key], rel=1e-6)
            assert leaf.module == leaf.name.rpartition(".")[0]  # tagged by model=: the owning module's path
            p = dict(model.named_parameters())[key]
            assert leaf.shape == tuple(p.shape)
            if d.index == 1:
                assert leaf.update_norm is None
            else:  # these parameters have at most 1,024 elements: read whole, so the update is exact
                assert leaf.update_norm == pytest.approx(upd[key], rel=1e-6, abs=1e-12)
            assert leaf.value_norm is not None and leaf.value_norm > 0
    # the kept traces agree with the digests of their passes
    for t in rec.traces:
        d = digests[t.index - 1]
        for leaf in d.leaves:
            g = t.leaves[leaf.name].grad
            assert g is not None and g.stats is not None
            assert leaf.grad_norm == pytest.approx(g.stats.norm, rel=1e-9)
            assert leaf.grad_max_abs == pytest.approx(max(abs(g.stats.min), abs(g.stats.max)))


def test_large_parameters_value_and_update_norms_from_their_sample(hooks: str) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(128, 96), torch.nn.ReLU(), torch.nn.Linear(96, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 128), torch.randint(0, 4, (32,))
    before = model[0].weight.detach().clone()
    with tracer.record(keep="none") as rec:
        for _ in range(2):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            if _ == 0:
                before = model[0].weight.detach().clone()
                opt.step()
    assert rec.traces == []
    first, second = (d.leaf("model.0.weight") for d in rec.digests)
    true_update = float((model[0].weight.detach() - before).norm())
    assert first.value_norm == pytest.approx(float(before.norm()), rel=0.1)  # 1,024 of 12,288 elements
    assert second.update_norm == pytest.approx(true_update, rel=0.1)
    bias_update = rec.digests[1].leaf("model.2.bias").update_norm  # 4 elements: read whole, exact
    assert bias_update is not None and bias_update > 0


def test_unchanged_parameter_has_zero_update(hooks: str) -> None:
    w = torch.randn(5, requires_grad=True)
    with tracer.record(names={"w": w}) as rec:
        for _ in range(3):
            (w * w).sum().backward()
    assert [d.leaf("w").update_norm for d in rec.digests] == [None, 0.0, 0.0]
    assert rec.digests[0].leaf("w").grad_norm == pytest.approx(float((2 * w.detach()).norm()), rel=1e-6)


def test_nan_pass_is_flagged_and_kept(hooks: str) -> None:
    model = _mlp()
    rec, _, _ = _train(model, _batches(30), record={"model": model, "keep": "first,last,flagged"}, nan_at=15)
    flagged = [d.index for d in rec.digests if d.flags]
    assert flagged == [15]
    assert "nan" in rec.digests[14].flags
    assert all(leaf.nan > 0 for leaf in rec.digests[14].leaves)
    assert [t.index for t in rec.traces] == [1, 15, 30]
    assert [d.kept for d in rec.digests].count(True) == 3


def test_exploding_and_vanishing_flags_follow_health_thresholds(hooks: str) -> None:
    assert digest_module.VANISHING == health_module.DEFAULT_VANISHING
    assert digest_module.EXPLODING == health_module.DEFAULT_EXPLODING
    w = torch.ones(3, requires_grad=True)
    with tracer.record(names={"w": w}, keep="flagged") as rec:
        (w * 1e7).sum().backward()
        (w * 1e-7).sum().backward()
        (w * 2).sum().backward()
    assert [d.flags for d in rec.digests] == [("exploding",), ("vanishing",), ()]
    assert [t.index for t in rec.traces] == [1, 2]


def test_keep_first_flagged_keeps_the_first_pass_of_each_flag_kind(hooks: str) -> None:
    """first-flagged (gradtrace run's default): later passes with a flag already seen keep only their digest."""
    w = torch.ones(3, requires_grad=True)
    with tracer.record(names={"w": w}, keep="first-flagged") as rec:
        for scale in (2.0, 1e-7, 1e-8, 1e7, 1e-7, 1e8, float("nan"), 3.0, float("nan")):
            (w * scale).sum().backward()
    assert [d.flags for d in rec.digests] == [
        (),
        ("vanishing",),
        ("vanishing",),
        ("exploding",),
        ("vanishing",),
        ("exploding",),
        ("nan",),
        (),
        ("nan",),
    ]
    assert [t.index for t in rec.traces] == [2, 4, 7]
    assert [d.index for d in rec.digests if d.kept] == [2, 4, 7]
    for t, scale in zip(rec.traces, (1e-7, 1e7), strict=False):  # each kept trace is its own pass's
        g = t.leaves["w"].grad
        assert g is not None and g.stats is not None
        assert g.stats.norm == pytest.approx(torch.linalg.vector_norm(torch.full((3,), scale)).item(), rel=1e-6)


def test_keep_last_holds_only_the_latest_pass(hooks: str) -> None:
    w = torch.randn(4, requires_grad=True)
    seen: list[int] = []
    with tracer.record(keep="last", on_pass=lambda t: seen.append(t.index)) as rec:
        for _ in range(5):
            (w * 3).sum().backward()
        assert rec.traces == []  # the last pass is known when the block closes
    assert [t.index for t in rec.traces] == [5]
    assert seen == [5]
    assert [d.kept for d in rec.digests] == [False] * 4 + [True]


def test_keep_all_is_the_default(hooks: str) -> None:
    w = torch.randn(4, requires_grad=True)
    with tracer.record() as rec:
        for _ in range(3):
            (w * 3).sum().backward()
    assert [t.index for t in rec.traces] == [1, 2, 3]
    assert all(d.kept for d in rec.digests)


def test_unbuilt_passes_hold_no_row_blocks(hooks: str) -> None:
    """A pass recorded but not read keeps only its samples (the 1 MiB row blocks go back at the end of the pass),
    and once older than the most recent ones, only their statistics. Counted, not timed: the bytes of every tensor
    the unbuilt passes of the issue's MLP still hold."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10)
    )
    x, y = torch.randn(64, 256), torch.randint(0, 10, (64,))
    passes = 200
    with tracer.record() as rec:
        for _ in range(passes):
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
    held = []
    for _, _, pending in rec._recorded:
        table = pending.table
        if hasattr(table, "_pass"):  # the native table: what it would hand over
            tensors = [e[5] for e in table._pass.export_entries() if e[5] is not None]
        else:
            tensors = [p for p in table._payload if p is not None]
        held.append(sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values()))
    assert len(held) == passes
    assert max(held) <= 72 * 1024, f"{max(held) / 1024:.0f} KiB held by one unbuilt pass"
    assert sum(held) / passes <= 16 * 1024, f"{sum(held) / passes / 1024:.0f} KiB per unbuilt pass on average"
    if hooks == "native":
        assert max(held) <= 64 * 1024
        from tracer.record.native.loader import load

        native = load()
        assert native is not None
        _blocks, shared = native.pooled_blocks()
        assert shared == 0  # no pooled block is pinned by a pass that waits to be read
    # and the traces still read back, the reduced passes' statistics included
    assert len(rec.traces) == passes
    assert rec.traces[0].leaves["model.0.weight"].grad is not None


def test_rss_growth_over_many_passes_is_bounded() -> None:
    """RSS in a fresh interpreter: 2,000 recorded steps of the issue's MLP with keep='every:100,flagged'."""
    program = """
import gc, json, torch, tracer
torch.set_num_threads(1)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                            torch.nn.ReLU(), torch.nn.Linear(512, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(64, 256), torch.randint(0, 10, (64,))
def rss():
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')) / 1024
def step():
    opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
with tracer.record(keep="every:100,flagged") as rec:
    for _ in range(50): step()
    gc.collect(); start = rss()
    for _ in range(2000): step()
    gc.collect(); end = rss()
print(json.dumps({"growth_mib": end - start, "digests": len(rec.digests), "traces": len(rec.traces)}))
"""
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True, timeout=600
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["digests"] == 2050 and result["traces"] == 20
    assert result["growth_mib"] < 40, result  # before bounded recording: about 1.4 MiB per pass, 2.8 GB here


@pytest.mark.parametrize(
    ("spec", "chosen"),
    [
        ("all", list(range(1, 13))),
        ("first,last,flagged", [1, 4, 12]),
        ("every:5", [5, 10]),
        ("every:5,flagged", [4, 5, 10]),
        ("first,last,first-flagged", [1, 4, 12]),
        ("first-flagged,flagged", [4]),
        ("1,10,last", [1, 10, 12]),
        (" 3-5 , 11", [3, 4, 5, 11]),
        ("none", []),
    ],
)
def test_pass_selection(spec: str, chosen: list[int]) -> None:
    sel = parse_pass_selection(spec)
    assert [i for i in range(1, 13) if sel.selects(i, is_last=i == 12, flagged=i == 4, new_flag=i == 4)] == chosen
    assert parse_pass_selection(sel.spec) == sel  # the normalised text reads back the same


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("every:0", "at least 1"),
        ("last-3", "'last' stands alone"),
        ("foo", "'foo'"),
        ("", "empty part"),
        ("1,,2", "empty part"),
        ("0", "numbered from 1"),
        ("7-3", "3-7"),
        ("none,first", "stands alone"),
        ("every", "after a colon"),
    ],
)
def test_pass_selection_errors(spec: str, says: str) -> None:
    with pytest.raises(PassSelectionError) as info:
        parse_pass_selection(spec)
    message = str(info.value)
    assert says in message
    assert "\n" not in message and "every:N" in message  # one paragraph, with how to write one
    with pytest.raises(ValueError):
        tracer.record(keep=spec)


def test_digests_json_round_trip(hooks: str) -> None:
    model = _mlp()
    rec, _, _ = _train(model, _batches(6), record={"model": model, "keep": "first"}, nan_at=3)
    text = digests_to_json(rec.digests)
    assert json.loads(text)["format"] == "gradtrace.digests"
    back = digests_from_json(text)
    assert len(back) == 6
    for a, b in zip(back, rec.digests, strict=True):  # NaN norms compare unequal: compare their text
        assert digests_to_json([a]) == digests_to_json([b])
    assert math.isnan(back[2].leaves[0].grad_norm or 0.0)
    with pytest.raises(TraceFormatError, match="version"):
        digests_from_json(text.replace('"version": 1', '"version": 99'))
    with pytest.raises(TraceFormatError, match="zeros"):
        digests_from_json(text.replace('"zeros": 0.0', '"zeros": 2.0', 1))
    with pytest.raises(TraceFormatError, match="health kinds"):
        bad = json.loads(text)
        bad["digests"][0]["flags"] = ["bad"]
        digests_from_json(json.dumps(bad))


def test_python_and_native_digests_agree() -> None:
    if pass_recorder.native_recorder() is None:
        pytest.skip("the native recorder is not built")
    results = []
    for native in (True, False):
        model = _mlp()
        saved = pass_recorder.native_recorder
        if not native:
            pass_recorder.native_recorder = lambda: None  # type: ignore[assignment]
        try:
            rec, _, _ = _train(model, _batches(4), record={"model": model, "keep": "none"})
        finally:
            pass_recorder.native_recorder = saved  # type: ignore[assignment]
        results.append(rec.digests)
    for a, b in zip(*results, strict=True):
        for x, y in zip(a.leaves, b.leaves, strict=True):
            assert x.name == y.name
            assert x.grad_norm == pytest.approx(y.grad_norm, rel=1e-9)
            assert x.grad_max_abs == y.grad_max_abs
            assert x.zeros == y.zeros
            assert x.value_norm == pytest.approx(y.value_norm, rel=1e-9)


def test_reduced_samples_give_the_same_traces(hooks: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long block reduces the samples of older unread passes to their statistics: the traces read back equal."""
    from tracer.record import sample_reduction

    def run() -> list[str]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.ReLU(), torch.nn.Linear(96, 5))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(40, 64), torch.randint(0, 5, (40,))
        with tracer.record() as rec:
            for _ in range(12):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        return [t.to_json() for t in rec.traces]

    monkeypatch.setattr(sample_reduction, "KEEP_RAW", 1000)
    unreduced = run()
    monkeypatch.setattr(sample_reduction, "KEEP_RAW", 2)
    monkeypatch.setattr(sample_reduction, "BATCH", 4)
    original = sample_reduction.reduce_tables
    reduced_entries: list[int] = []

    def counting(tables: list[Any]) -> None:
        reduced_entries.append(sum(len(t.reducible()) for t in tables))
        original(tables)

    monkeypatch.setattr(sample_reduction, "reduce_tables", counting)
    reduced = run()
    assert len(reduced_entries) == 2 and all(n > 0 for n in reduced_entries)  # passes 1-8 were reduced
    assert len(reduced) == 12
    assert reduced == unreduced


def test_huge_parameters_and_unreadable_ones_keep_their_digest_finite(hooks: str) -> None:
    """Values whose squares overflow float64 still have a finite norm; a digest never costs a pass its trace."""
    w = torch.full((3,), 1e200, dtype=torch.float64, requires_grad=True)
    with tracer.record(names={"w": w}) as rec:
        (w * 1e-200).sum().backward()
    leaf = rec.digests[0].leaf("w")
    assert leaf.value_norm == pytest.approx(math.sqrt(3) * 1e200)
    assert len(rec.traces) == 1
