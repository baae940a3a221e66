"""Leaves are named after the caller's variables (locals, then globals), names=, or leaf0, leaf1, ...."""

from __future__ import annotations

import torch

import tracer

GLOBAL_W = torch.tensor([2.0, 3.0], requires_grad=True)


def test_locals_then_globals() -> None:
    x = torch.tensor([1.0, 1.0], requires_grad=True)
    y = (x * GLOBAL_W).sum()
    trace = tracer.trace(y)
    assert set(trace.leaves) == {"x", "GLOBAL_W"}
    assert trace.seeds[0].name == "y"
    GLOBAL_W.grad = None


def test_unnamed_leaves_get_numbered_in_execution_order() -> None:
    def make() -> torch.Tensor:
        a = torch.tensor([1.0], requires_grad=True)
        b = torch.tensor([2.0], requires_grad=True)
        return (a * b).sum()

    trace = tracer.trace(make())
    assert sorted(trace.leaves) == ["leaf0", "leaf1"]
    order = sorted(trace.leaves.values(), key=lambda leaf: leaf.node or 0)
    assert [leaf.name for leaf in order] == ["leaf0", "leaf1"]


def test_names_dict_wins() -> None:
    x = torch.tensor([1.0], requires_grad=True)
    trace = tracer.trace((x * 2).sum(), names={"input": x})
    assert list(trace.leaves) == ["input"]


def test_names_module_uses_named_parameters_and_reports_unused_ones() -> None:
    model = torch.nn.ModuleDict({"used": torch.nn.Linear(2, 1), "unused": torch.nn.Linear(2, 1)})
    trace = tracer.trace(model["used"](torch.ones(1, 2)).sum(), names=model)
    assert trace.leaves["model.used.weight"].grad is not None
    unused = trace.leaves["model.unused.weight"]
    assert unused.node is None and unused.grad is None and "not on any path" in (unused.reason or "")


def test_modules_in_scope_name_their_parameters() -> None:
    net = torch.nn.Linear(2, 1)
    trace = tracer.trace(net(torch.ones(1, 2)).sum())
    assert set(trace.leaves) == {"net.weight", "net.bias"}


def test_retain_grad_tensors_are_recorded() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    trace = tracer.trace((h**2).sum())
    leaf = trace.leaves["h"]
    assert leaf.kind == "retained"
    assert leaf.grad is not None and leaf.grad.values == (6.0, 12.0)
    assert leaf.grad_total is not None and leaf.grad_total.values == tuple(h.grad.tolist())


def test_grad_inputs_that_are_not_leaves() -> None:
    p = torch.tensor([1.0, 2.0], requires_grad=True)
    q = p * 3
    with tracer.record() as rec:
        (g,) = torch.autograd.grad((q**2).sum(), q)
    (trace,) = rec.traces
    assert trace.kind == "grad"
    assert trace.options.inputs == ("q",)
    assert trace.leaves["q"].kind == "input"
    assert trace.leaves["q"].grad.values == tuple(g.tolist())
    assert p.grad is None  # grad() does not accumulate
    assert trace.leaves["p"].grad is None
    assert trace.leaves["p"].reason is not None


class _Shared(torch.nn.Module):
    """A module tree with a shared child, a tied parameter, a None parameter and an empty container."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4))
        self.again = self.encoder[0]  # the same module under a second name
        self.head = torch.nn.Linear(4, 3)
        self.head.weight = self.encoder[2].weight  # tied: listed once, under its first name
        self.register_parameter("missing", None)
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.empty = torch.nn.ModuleList()


class _Listed(torch.nn.Module):
    """Lists its parameters its own way: asked itself."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = torch.nn.Linear(2, 2)

    def named_modules(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def, override]
        yield "", self


def test_named_parameters_lists_what_torch_lists_in_its_order() -> None:
    """NameBook reads modules' parameter dicts directly (it runs every recorded pass): the same names, objects
    and order as nn.Module.named_parameters(), including shared and tied parts and classes that list their
    own."""
    from tracer.record.names import named_parameters

    for module in (
        _Shared(),
        torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16), 2, enable_nested_tensor=False),
        torch.nn.Sequential(_Listed(), torch.nn.Linear(2, 2)),
        _Listed(),
        torch.nn.Linear(2, 2),
        torch.nn.ReLU(),
    ):
        ours = [(name, id(param)) for name, param in named_parameters(module)]
        assert ours == [(name, id(param)) for name, param in module.named_parameters()], type(module).__name__


def test_frames_anywhere_in_the_package_are_ours() -> None:
    """The user's frame is the first outside every room of tracer/ (a pass started by the display or the gallery
    is named after the user's variables, not after ours)."""
    import os

    from tracer.record.names import user_frame

    package = os.path.dirname(os.path.abspath(tracer.__file__)) + os.sep
    namespace: dict[str, object] = {"user_frame": user_frame, "__name__": "inside"}
    for room in ("display", "gallery", "render"):
        code = compile("found = user_frame()", os.path.join(package, room, "pretend.py"), "exec")
        exec(code, namespace)  # a frame whose file is in tracer/ROOM/: skipped, this test's frame is found
        assert namespace["found"] is not None
        assert namespace["found"].f_code.co_filename == __file__  # type: ignore[attr-defined]
