"""Structure of recorded graphs: order, depth, width, op counts, cut edges, unexecuted nodes, unreached leaves."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

import tracer
from tests.cases import CASES, Case
from tests.models import record_mlp, record_transformer
from tracer.analyse.structure import CONSTANT_REASON


def _trace(case: Case) -> tracer.Trace:
    leaves = case.leaves()
    y = case.forward(leaves)
    return tracer.trace(y, case.seed(y), names=leaves)


def _longest_path_nodes(trace: tracer.Trace) -> int:
    """Independent depth: networkx's longest path over the backward nodes only, counted in nodes."""
    g = trace.graph
    sub = g.subgraph([k for k, kind in g.nodes(data="kind") if kind == "node"])
    return nx.dag_longest_path_length(sub) + 1


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_case_runs_in_a_topological_order(case: Case) -> None:
    trace = _trace(case)
    st = tracer.structure(trace)
    assert st.order_ok and st.order_violations == ()
    assert st.execution_order == tuple(range(1, len(trace.steps) + 1))
    assert st.topological_order[: len(st.execution_order)] == st.execution_order
    assert sorted(st.topological_order) == [n.id for n in trace.nodes]
    assert st.depth == _longest_path_nodes(trace)
    assert sum(len(level) for level in st.levels) == len(trace.nodes)
    assert sum(count for _, count in st.op_counts) == len(trace.nodes)
    assert st.seeds == ("y",) or st.seeds == ("output0",)
    assert st.leaves == tuple(case.leaves())


def test_item_assignment_graph_by_hand() -> None:
    """y[0] = x[0]**2; y[1] = x[1]**3; y[2] = x[1]**4: three CopySlices in a chain, each with pow ← select."""
    case = next(c for c in CASES if c.id == "item_assign_vector_to_vector")
    st = tracer.structure(_trace(case))
    assert dict(st.op_counts) == {"CopySlices": 3, "PowBackward0": 3, "SelectBackward0": 3, "AccumulateGrad": 1}
    # CopySlices → CopySlices → CopySlices → pow → select → AccumulateGrad
    assert st.depth == 6
    assert st.levels[0] == (1,)  # the last write runs first
    assert st.width == 3  # e.g. level 3: the third CopySlices, a pow, a select
    # the zeros tensor y started from needs no gradient: the first write's edge to it is cut
    assert [(c.node, c.edge, c.kind) for c in st.cut_edges] == [(7, 0, "constant")]
    assert st.cut_edges[0].reason == CONSTANT_REASON
    assert st.unexecuted == () and st.unreached_leaves == ()


def test_x_times_x_is_two_edges_to_one_leaf() -> None:
    x = torch.arange(4.0, requires_grad=True)
    st = tracer.structure(tracer.trace(x * x, torch.ones(4)))
    assert st.depth == 2 and st.width == 1
    assert dict(st.op_counts) == {"MulBackward0": 1, "AccumulateGrad": 1}
    assert st.cut_edges == ()


def test_detach_is_a_cut_edge() -> None:
    x = torch.arange(4.0, requires_grad=True)
    u = (x * x).detach()
    st = tracer.structure(tracer.trace((u * x).sum()))
    # SumBackward0 → MulBackward0 (edge 0 to u: detached, edge 1 to x)
    assert [(c.node, c.edge, c.kind) for c in st.cut_edges] == [(2, 0, "constant")]
    assert torch.equal(x.grad, u)


def test_none_from_a_custom_backward_is_a_cut_edge_with_its_reason() -> None:
    class DropsSecond(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            return a * b

        @staticmethod
        def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
            return g, None

    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([3.0, 4.0], requires_grad=True)
    trace = tracer.trace(DropsSecond.apply(a, b).sum())
    st = tracer.structure(trace)
    fn = next(n for n in trace.steps if n.name == "DropsSecondBackward")
    assert [(c.node, c.edge, c.kind) for c in st.cut_edges] == [(fn.id, 1, "none")]
    assert "returned None" in st.cut_edges[0].reason
    assert b.grad is None
    assert [u.name for u in st.unreached_leaves] == ["b"]
    assert st.unreached_leaves[0].reason == trace.leaves["b"].reason


def test_grad_with_inputs_leaves_nodes_unexecuted() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    with tracer.record() as rec:
        y = x * x * w
        torch.autograd.grad(y, [x], torch.tensor([1.0, 0.0]))
    (trace,) = rec.traces
    st = tracer.structure(trace)
    names = {n.id: n.name for n in trace.nodes}
    assert [names[i] for i in st.unexecuted] == ["AccumulateGrad", "AccumulateGrad"]
    assert [(c.kind, "inputs=" in c.reason) for c in st.cut_edges] == [("none", True)]
    assert {u.name for u in st.unreached_leaves} == {"w"}
    assert "inputs=" in st.unreached_leaves[0].reason
    assert st.order_ok


def test_a_named_leaf_on_no_path_says_why() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    unused = torch.tensor([5.0], requires_grad=True)
    st = tracer.structure(tracer.trace((x * 2).sum(), names={"x": x, "unused": unused}))
    assert [u.name for u in st.unreached_leaves] == ["unused"]
    assert "not on any path" in st.unreached_leaves[0].reason


def test_str_lists_the_facts() -> None:
    x = torch.arange(4.0, requires_grad=True)
    u = (x * x).detach()
    text = str(tracer.structure(tracer.trace((u * x).sum())))
    assert "3 steps, depth 3, width 1; execution order is a topological order" in text
    assert "cut edge: node 2 edge 0 (constant)" in text


@pytest.mark.parametrize("record", [record_mlp, record_transformer], ids=["mlp", "transformer"])
def test_real_models(record) -> None:  # type: ignore[no-untyped-def]
    r = record()
    st = tracer.structure(r.trace)
    assert st.order_ok
    assert st.depth == _longest_path_nodes(r.trace)
    counts = dict(st.op_counts)
    assert counts["AccumulateGrad"] == len(list(r.model.parameters()))
    assert set(st.leaves) == set(r.grads)
    assert st.unreached_leaves == ()
    # the input batch and the target need no gradient: every cut edge leads to a constant
    assert st.cut_edges and all(c.kind == "constant" for c in st.cut_edges)


def test_mlp_by_hand() -> None:
    st = tracer.structure(record_mlp().trace)
    assert dict(st.op_counts) == {
        "AccumulateGrad": 4,
        "AddmmBackward0": 2,
        "TBackward0": 2,
        "MseLossBackward0": 1,
        "TanhBackward0": 1,
    }
    # mse → addmm → tanh → addmm → t → AccumulateGrad(weight 0)
    assert st.depth == 6
    # mse's edge to the target, addmm's edge to the input batch
    assert len(st.cut_edges) == 2
