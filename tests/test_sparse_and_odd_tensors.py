"""Tensors of other kinds in a recorded pass (issue 16, item 2): sparse, quantized, nested and torch.func's
wrappers are summarised or left out, never an exception in the user's code, and `.grad` is always what torch
gives. A recording step that fails must never keep the engine from running the user's pass."""

from __future__ import annotations

import warnings

import pytest
import torch

import tracer
from tests.fuzzing import TALLY
from tracer.record import before_pass, pass_recorder, tensors

pytestmark = pytest.mark.usefixtures("engine_restored")


def _sparse_bits(t: torch.Tensor) -> tuple[list[list[int]], list[float]]:
    t = t.coalesce()
    return t.indices().tolist(), t.values().view(-1).tolist()


def _embedding_steps(traced: bool, rows: int) -> tuple[torch.Tensor, list[tracer.Trace], list[str]]:
    torch.manual_seed(0)
    emb = torch.nn.Embedding(rows, 3, sparse=True)
    batches = [torch.tensor([1, 2, 1]), torch.tensor([4, 1, 9])]
    if not traced:
        for tokens in batches:
            (emb(tokens) * 3).sum().backward()
        assert emb.weight.grad is not None
        return emb.weight.grad, [], []
    with tracer.record() as rec:
        for tokens in batches:  # the second pass accumulates into a sparse .grad
            (emb(tokens) * 3).sum().backward()
    assert emb.weight.grad is not None
    return emb.weight.grad, rec.traces, rec.unrecorded


@pytest.mark.parametrize("rows", [10, 1000], ids=["values-kept", "statistics"])
def test_sparse_gradients_are_recorded_and_grad_is_unchanged(rows: int, hooks: str) -> None:
    plain, _, _ = _embedding_steps(False, rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "could not record"
        grad, traces, unrecorded = _embedding_steps(True, rows)
    assert grad.is_sparse and _sparse_bits(grad) == _sparse_bits(plain)
    assert unrecorded == [] and len(traces) == 2
    first, second = traces
    for t in traces:
        assert t.complete and t.notes == (), t.notes
    dense = plain.to_dense()
    leaf = second.leaves["weight"] if "weight" in second.leaves else next(iter(second.leaves.values()))
    total = leaf.grad_total
    assert total is not None and total.shape == (rows, 3) and total.stats is not None
    assert total.stats.norm == pytest.approx(float(dense.norm()))
    assert total.stats.zeros == pytest.approx(float((dense == 0).double().mean()))
    assert total.stats.mean == pytest.approx(float(dense.mean()))
    before = leaf.grad_before
    assert before is not None and before.stats is not None  # the sparse .grad of the first pass, copied
    first_leaf = next(iter(first.leaves.values()))
    assert first_leaf.grad is not None and first_leaf.grad.stats is not None
    assert before.stats.norm == pytest.approx(first_leaf.grad.stats.norm)
    if rows == 10:
        assert total.values is not None and total.values == tuple(dense.reshape(-1).tolist())
    for t in traces:
        assert tracer.load(t.to_json()).to_json() == t.to_json()
    TALLY["odd passes and tensors (same results as untraced; recorded, or noted once)"] += 1


def test_other_kinds_are_summarised_without_raising() -> None:
    index, values = torch.tensor([[0, 2, 0]]), torch.tensor([3.0, -4.0, 1.0])
    sparse = torch.sparse_coo_tensor(index, values, (5,), check_invariants=True)  # uncoalesced: 0 twice
    info = tensors.odd_info(sparse, max_values=0)
    assert info.shape == (5,) and info.values is None and info.stats is not None
    assert (info.stats.norm, info.stats.min, info.stats.max) == (pytest.approx(32**0.5), -4.0, 4.0)
    assert info.stats.zeros == pytest.approx(3 / 5) and info.stats.mean == pytest.approx(0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "Sparse CSR tensor support is in beta state"
        csr = torch.eye(3).to_sparse_csr()
    assert tensors.summarise(csr) is not None and tensors.summarise(csr).values == tuple(
        torch.eye(3).reshape(-1).tolist()
    )  # type: ignore[union-attr]
    complex_sparse = torch.tensor([[0, 1j], [0, 0]]).to_sparse()
    assert tensors.odd_info(complex_sparse, 0).stats is not None  # magnitudes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates quantized creation functions
        quantized = torch.quantize_per_tensor(torch.tensor([0.5, -1.0]), 0.5, 0, torch.qint8)
    q = tensors.summarise(quantized)
    assert q is not None and q.dtype == "qint8" and q.values == (0.5, -1.0)
    nested = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)], layout=torch.jagged)
    n = tensors.summarise(nested)
    assert n is not None and n.shape == (2,) and n.stats is None  # components counted, nothing read
    for t in (sparse, csr, quantized, nested):
        assert not tensors.readable(t)
    assert tensors.readable(torch.ones(2)) and tensors.readable(torch.ones(2, dtype=torch.complex64))
    # quantized tensors cannot take part in autograd at all: nothing for the recorder to meet there
    with pytest.raises(RuntimeError, match="floating point"):
        quantized.requires_grad_()


def test_nested_tensor_pass_gives_the_same_grad(hooks: str) -> None:
    def run(traced: bool) -> tuple[list[list[float]], list[tracer.Trace]]:
        a = torch.tensor([1.0, 2.0], requires_grad=True)
        b = torch.tensor([3.0, 4.0, 5.0], requires_grad=True)
        nt = torch.nested.as_nested_tensor([a, b], layout=torch.jagged)
        if traced:
            with tracer.record() as rec:
                (nt * 2).sin().values().sum().backward()
            traces = rec.traces
        else:
            (nt * 2).sin().values().sum().backward()
            traces = []
        assert a.grad is not None and b.grad is not None
        return [a.grad.tolist(), b.grad.tolist()], traces

    plain, _ = run(False)
    grads, traces = run(True)
    assert grads == plain and len(traces) == 1
    TALLY["odd passes and tensors (same results as untraced; recorded, or noted once)"] += 1


def test_a_failing_recording_step_still_runs_the_users_pass(hooks: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """If copying what a pass starts from fails (any reason, any tensor), the engine still runs the pass."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected: cannot copy this .grad")

    monkeypatch.setattr(pass_recorder, "snapshot", broken)
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    x.grad = torch.tensor([10.0, 10.0])
    with (
        pytest.warns(tracer.GradtraceWarning, match="could not record this pass: RuntimeError: injected"),
        tracer.record() as rec,
    ):
        (x * 3).sum().backward()
    assert x.grad.tolist() == [13.0, 13.0]
    assert rec.traces == [] and rec.unrecorded == ["RuntimeError: injected: cannot copy this .grad"]
    assert before_pass.snapshot is not broken
    TALLY["odd passes and tensors (same results as untraced; recorded, or noted once)"] += 1
