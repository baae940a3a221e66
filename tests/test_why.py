"""tracer.why: every cause of a None, zero or broken gradient, written as a user writes the bug, answered with the
right cause and the right line; the forward record changes nothing."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import tracer
from tracer.display.why_call import why_in_script
from tracer.model.why_records import Cause, WhyAnswer

HEAD = "import torch\ntorch.manual_seed(0)\n"


def ask(tmp_path: Path, body: str, leaf: str | None = None) -> tuple[WhyAnswer, int]:
    """Run `body` as a user's script and ask why about `leaf`; also the line marked `# <-` in it."""
    source = HEAD + textwrap.dedent(body)
    script = tmp_path / "user_script.py"
    script.write_text(source)
    marked = [n for n, text in enumerate(source.splitlines(), 1) if text.rstrip().endswith("# <-")]
    assert len(marked) == 1, "mark the line the answer must name with `# <-`"
    with warnings.catch_warnings():  # the bugs make torch warn (.item() on a tensor that requires grad)
        warnings.simplefilter("ignore")
        answer, _ = why_in_script(script, leaf=leaf)
    assert answer.file == str(script), answer.text
    return answer, marked[0]


CUTS = {
    "unused parameter": (
        """
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.used = torch.nn.Linear(3, 2)
                self.spare = torch.nn.Linear(3, 2)

            def forward(self, x):
                return self.used(x)

        model = Net()
        loss = model(torch.randn(4, 3)).sum()  # <-
        loss.backward()
        """,
        "model.spare.weight",
        Cause.UNUSED,
    ),
    "branch not taken": (
        """
        w = torch.randn(3, requires_grad=True)
        v = torch.randn(3, requires_grad=True)
        x = torch.randn(3)
        use_w = False
        if use_w:
            y = w * x
        else:
            y = v * x
        loss = y.sum()  # <-
        loss.backward()
        """,
        "w",
        Cause.UNUSED,
    ),
    "detach": (
        """
        w = torch.randn(3, requires_grad=True)
        v = torch.randn(3, requires_grad=True)
        h = (w * 2).detach()  # <-
        loss = (h * v).sum()
        loss.backward()
        """,
        "w",
        Cause.DETACH,
    ),
    "no_grad": (
        """
        w = torch.randn(3, requires_grad=True)
        v = torch.randn(3, requires_grad=True)
        with torch.no_grad():
            h = w * 2  # <-
        loss = (h * v).sum()
        loss.backward()
        """,
        "w",
        Cause.NO_GRAD,
    ),
    "inference_mode": (
        """
        w = torch.randn(3, requires_grad=True)
        v = torch.randn(3, requires_grad=True)
        with torch.inference_mode():
            h = torch.tanh(w)  # <-
        loss = (h.clone() + v).sum()
        loss.backward()
        """,
        "w",
        Cause.NO_GRAD,
    ),
    ".data": (
        """
        w = torch.randn(3, requires_grad=True)
        v = torch.randn(3, requires_grad=True)
        h = w.data * 2  # <-
        loss = (h * v).sum()
        loss.backward()
        """,
        "w",
        Cause.DATA,
    ),
    ".item()": (
        """
        w = torch.randn(3, requires_grad=True)
        v = torch.randn(3, requires_grad=True)
        scale = (w ** 2).sum().item()  # <-
        loss = v.sum() * scale
        loss.backward()
        """,
        "w",
        Cause.VALUES,
    ),
    ".tolist() into torch.tensor": (
        """
        w = torch.randn(3, requires_grad=True)
        v = torch.randn(3, requires_grad=True)
        h = w * 2
        again = torch.tensor(h.tolist())  # <-
        loss = (again * v).sum()
        loss.backward()
        """,
        "w",
        Cause.VALUES,
    ),
    "numpy round trip": (
        """
        import numpy as np
        w = torch.randn(3, requires_grad=True)
        v = torch.randn(3, requires_grad=True)
        array = np.tanh((w * 2).detach().numpy())  # <-
        loss = (torch.from_numpy(array) * v).sum()
        loss.backward()
        """,
        "w",
        Cause.VALUES,
    ),
    "tensor re-created from tensors": (
        """
        a = torch.randn((), requires_grad=True)
        b = torch.randn((), requires_grad=True)
        v = torch.randn(2, requires_grad=True)
        pair = torch.tensor([a * 2, b * 3])  # <-
        loss = (pair * v).sum()
        loss.backward()
        """,
        "a",
        Cause.RECREATED,
    ),
    "argmax": (
        """
        w = torch.randn(5, requires_grad=True)
        v = torch.randn(5, requires_grad=True)
        best = torch.argmax(w * 3)  # <-
        loss = v[best] * 2
        loss.backward()
        """,
        "w",
        Cause.INTEGER,
    ),
    "comparison": (
        """
        w = torch.randn(5, requires_grad=True)
        v = torch.randn(5, requires_grad=True)
        mask = (w > 0).float()  # <-
        loss = (mask * v).sum()
        loss.backward()
        """,
        "w",
        Cause.INTEGER,
    ),
    "frozen parameter": (
        """
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
        model[0].weight.requires_grad_(False)  # <-
        loss = model(torch.randn(8, 3)).pow(2).mean()
        loss.backward()
        """,
        "model.0.weight",
        Cause.FROZEN,
    ),
    "non-leaf without retain_grad": (
        """
        w = torch.randn(3, requires_grad=True)
        hidden = torch.sin(w)  # <-
        loss = (hidden * 2).sum()
        loss.backward()
        """,
        "hidden",
        Cause.NON_LEAF,
    ),
}


@pytest.mark.parametrize("case", list(CUTS))
def test_each_cause_of_a_none_gradient_is_named_with_its_line(tmp_path: Path, case: str) -> None:
    body, leaf, cause = CUTS[case]
    answer, line = ask(tmp_path, body, leaf)
    assert answer.cause is cause, answer.text
    assert answer.line == line, answer.text
    assert leaf in answer.explanation
    assert answer.code is not None and answer.code.endswith("# <-")


ZEROS = {
    "dead relu": (
        """
        W = torch.randn(3, 4, requires_grad=True)
        x = torch.rand(8, 3)
        h = torch.relu(x @ W - 100.0)  # <-
        loss = h.sum()
        loss.backward()
        """,
        "W",
        Cause.DEAD_RELU,
        "ReluBackward0",
    ),
    "mask": (
        """
        w = torch.randn(6, requires_grad=True)
        mask = torch.zeros(6)
        loss = (w * mask).sum()  # <-
        loss.backward()
        """,
        "w",
        Cause.MASK,
        "MulBackward0",
    ),
    "where": (
        """
        w = torch.randn(4, requires_grad=True)
        x = torch.randn(4)
        y = torch.where(x > 100.0, w * 2, torch.zeros(4))  # <-
        loss = y.sum()
        loss.backward()
        """,
        "w",
        Cause.WHERE,
        "WhereBackward0",
    ),
    "clamp at its bound": (
        """
        w = torch.rand(4, requires_grad=True)
        y = (w + 5.0).clamp(max=1.0)  # <-
        loss = y.sum()
        loss.backward()
        """,
        "w",
        Cause.CLAMP,
        "ClampBackward1",
    ),
    "round": (
        """
        w = torch.randn(4, requires_grad=True)
        loss = (w * 10).round().sum()  # <-
        loss.backward()
        """,
        "w",
        Cause.STEP,
        "RoundBackward0",
    ),
}


@pytest.mark.parametrize("case", list(ZEROS))
def test_each_cause_of_a_zero_gradient_names_the_node_share_and_line(tmp_path: Path, case: str) -> None:
    body, leaf, cause, node = ZEROS[case]
    answer, line = ask(tmp_path, body, leaf)
    assert answer.cause is cause, answer.text
    assert answer.line == line, answer.text
    assert answer.node == node
    assert answer.share == 1.0
    assert "100%" in answer.explanation
    assert answer.path[0].kind == "output" and answer.path[-1].kind == "target"
    assert node in [s.node for s in answer.path]


def test_a_partly_dead_relu_is_a_gradient_that_arrived_with_its_share_of_zeros(tmp_path: Path) -> None:
    answer, line = ask(
        tmp_path,
        """
        W = torch.tensor([[1.0, -1.0], [1.0, -1.0]], requires_grad=True)
        h = torch.relu(torch.ones(1, 2) @ W)
        loss = h.sum()
        loss.backward()  # <-
        """,
        "W",
    )
    assert answer.cause is Cause.REACHED and answer.line == line
    assert any("50% of W.grad is zero" in note and "ReluBackward0" in note for note in answer.also), answer.text


ERRORS = {
    "in-place change of a saved tensor": (
        """
        a = torch.randn(3, requires_grad=True)
        b = a.sigmoid()
        c = b * 2
        b.add_(1)  # <-
        c.sum().backward()
        """,
        Cause.INPLACE,
        ("add_", "SigmoidBackward0"),
    ),
    "in-place change of an input that needs no grad": (
        """
        w = torch.randn(3, requires_grad=True)
        x = torch.randn(3)
        y = w * x
        x.mul_(2)  # <-
        y.sum().backward()
        """,
        Cause.INPLACE,
        ("`x`", "mul_", "MulBackward0"),
    ),
    "backward through a freed graph": (
        """
        w = torch.randn(3, requires_grad=True)
        loss = (w.exp() * 2).sum()
        loss.backward()  # <-
        loss.backward()
        """,
        Cause.SECOND_BACKWARD,
        ("retain_graph=True",),
    ),
    "output without a grad_fn": (
        """
        w = torch.randn(3, requires_grad=True)
        features = w.detach() * 2  # <-
        loss = features.sum()
        loss.backward()
        """,
        Cause.NO_GRAD_FN,
        ("`.detach()`", "loss"),
    ),
    "output computed under no_grad": (
        """
        w = torch.randn(3, requires_grad=True)
        with torch.no_grad():
            loss = (w * 2).sum()  # <-
        loss.backward()
        """,
        Cause.NO_GRAD_FN,
        ("gradients turned off",),
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_each_backward_error_is_explained_with_the_line_that_caused_it(tmp_path: Path, case: str) -> None:
    body, cause, words = ERRORS[case]
    answer, line = ask(tmp_path, body)
    assert answer.cause is cause, answer.text
    assert answer.line == line, answer.text
    assert answer.error is not None
    for word in words:
        assert word in answer.text


def test_the_inplace_answer_names_the_tensor_the_op_and_the_node_that_needed_it(tmp_path: Path) -> None:
    answer, line = ask(
        tmp_path,
        """
        x = torch.randn(4, requires_grad=True)
        h = torch.exp(x)
        out = h * torch.ones(4)
        h += 1  # <-
        out.sum().backward()
        """,
        None,
    )
    assert answer.cause is Cause.INPLACE and answer.line == line
    # ExpBackward0 saved its result h; `h += 1` bumped h's version from 0 to 1
    assert answer.target == "h" and answer.node == "ExpBackward0"
    assert "add_" in answer.explanation and "from 0 to 1" in answer.explanation


def test_a_tensor_that_got_its_gradient_is_said_so_with_its_path() -> None:
    w = torch.randn(3, requires_grad=True)
    x = torch.randn(3)
    with tracer.record(forward=True) as rec:
        loss = torch.tanh(w * x).sum()
        loss.backward()
    answer = tracer.why(w, rec)
    assert answer.cause is Cause.REACHED
    assert "w got a gradient" in answer.text and "loss" in answer.text
    assert [s.node for s in answer.path] == ["loss", "SumBackward0", "TanhBackward0", "MulBackward0", "w"]
    assert answer.path[-1].kind == "target"


def test_why_takes_a_function_and_explains_what_it_raised() -> None:
    w = torch.randn(3, requires_grad=True)

    def train_step() -> None:
        loss = (w * 2).sum().detach()
        loss.backward()

    answer = tracer.why(train_step)
    assert answer.cause is Cause.NO_GRAD_FN
    assert answer.line == train_step.__code__.co_firstlineno + 1
    assert "loss" in answer.text


def test_why_with_a_function_answers_for_a_parameter() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))

    def train_step() -> None:
        with torch.no_grad():
            hidden = model[0](torch.randn(3, 2))
        model[1](hidden).sum().backward()

    answer = tracer.why(model[0].weight, train_step)
    assert answer.cause is Cause.NO_GRAD
    assert answer.line == train_step.__code__.co_firstlineno + 2
    assert "model.0.weight" in answer.text


def test_why_on_something_that_is_not_a_tensor_is_one_clear_error() -> None:
    with tracer.record(forward=True) as rec:
        pass
    with pytest.raises(tracer.GradtraceError, match=r"got a list .* pass the tensor or parameter itself"):
        tracer.why([1.0, 2.0], rec)
    with pytest.raises(tracer.GradtraceError, match=r"no variable 'nothing_here'"):
        tracer.why("nothing_here", rec)


def test_why_needs_a_forward_record_and_says_how_to_make_one() -> None:
    w = torch.randn(3, requires_grad=True)
    with tracer.record() as rec:
        (w * 2).sum().backward()
    with pytest.raises(tracer.GradtraceError, match=r"forward=True"):
        tracer.why(w, rec)
    with pytest.raises(tracer.GradtraceError, match=r"forward=True"):
        tracer.why(w)


def test_without_a_record_a_frozen_tensor_is_still_explained() -> None:
    frozen = torch.randn(3)
    answer = tracer.why(frozen)
    assert answer.cause is Cause.FROZEN and "requires_grad=False" in answer.text


def test_asking_for_the_error_when_there_was_none_says_what_to_ask_instead() -> None:
    w = torch.randn(3, requires_grad=True)
    with tracer.record(forward=True) as rec:
        (w * 2).sum().backward()
    with pytest.raises(tracer.GradtraceError, match=r"no backward error to explain"):
        tracer.why(rec)


# --------------------------------------------------------------------------- the forward record changes nothing


def _mlp_step(seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    x = torch.randn(16, 5)
    out = model(x)
    loss = torch.nn.functional.cross_entropy(out, torch.randint(0, 2, (16,)))
    loss.backward()
    return [p.grad.clone() for p in model.parameters() if p.grad is not None], out.detach()


def test_the_forward_record_leaves_results_bit_identical(hooks: str) -> None:
    plain_grads, plain_out = _mlp_step(3)
    with tracer.record(forward=True) as rec:
        grads, out = _mlp_step(3)
    assert rec.forward is not None and len(rec.forward.record.ops) > 5
    assert torch.equal(out, plain_out)
    assert len(grads) == len(plain_grads)
    for mine, theirs in zip(grads, plain_grads, strict=True):
        assert torch.equal(mine, theirs)


def test_the_forward_record_raises_the_same_exceptions() -> None:
    def failing() -> None:
        a = torch.randn(3, requires_grad=True)
        b = a.sigmoid()
        b.mul_(2)
        b.sum().backward()
        torch.ones(2) @ torch.ones(3)

    with pytest.raises(RuntimeError) as plain:
        torch.ones(2) @ torch.ones(3)
    with tracer.record(forward=True), pytest.raises(RuntimeError) as recorded:
        torch.ones(2) @ torch.ones(3)
    assert type(recorded.value) is type(plain.value) and str(recorded.value) == str(plain.value)
    with pytest.raises(RuntimeError) as plain_inplace:
        failing()
    with tracer.record(forward=True), pytest.raises(RuntimeError) as recorded_inplace:
        failing()
    assert str(recorded_inplace.value).split("\n")[0] == str(plain_inplace.value).split("\n")[0]


class _CountingMode(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.calls.append(getattr(func, "__name__", "?"))
        return func(*args, **(kwargs or {}))


def test_a_users_torch_function_mode_still_works_inside_and_around_the_record() -> None:
    w = torch.randn(3, requires_grad=True)
    inner = _CountingMode()
    with tracer.record(forward=True) as rec, inner:
        y = (w * 2).sum()
    outer = _CountingMode()
    with outer, tracer.record(forward=True) as rec2:
        z = (w * 2).sum()
    assert inner.calls == ["mul", "sum"] and outer.calls == ["mul", "sum"]
    assert torch.equal(y, z)
    assert [op.op for op in rec.forward.record.ops] == ["mul", "sum"]  # type: ignore[union-attr]
    assert [op.op for op in rec2.forward.record.ops] == ["mul", "sum"]  # type: ignore[union-attr]


def test_the_forward_record_keeps_no_tensor_alive() -> None:
    import gc
    import weakref

    def run() -> tuple[tracer.Recorder, weakref.ref[torch.Tensor]]:
        # in a function of its own: Python 3.11's frame keeps a snapshot of its locals once they are read
        with tracer.record(forward=True) as rec:
            big = torch.randn(1000, requires_grad=True)
            (big * 2).sum().backward()
            values = big.detach().numpy()
            float(values.sum())
        assert rec.traces  # the backward recorder lets go of the pass's tensors once its trace is built
        return rec, weakref.ref(big)

    rec, ref = run()
    gc.collect()
    assert ref() is None
    assert rec.forward is not None and [op.op for op in rec.forward.record.ops][:3] == ["randn", "mul", "sum"]


def test_forward_must_be_a_flag() -> None:
    with pytest.raises(ValueError, match="forward must be True or False"):
        tracer.record(forward="yes")  # type: ignore[arg-type]


def test_why_takes_the_variables_name() -> None:
    weight = torch.randn(3, requires_grad=True)
    with tracer.record(forward=True) as rec:
        with torch.no_grad():
            scaled = weight * 2
        (scaled * torch.ones(3, requires_grad=True)).sum().backward()
    answer = tracer.why("weight", rec)
    assert answer.cause is Cause.NO_GRAD and answer.target == "weight"
    assert answer.code == "scaled = weight * 2"


@pytest.mark.graphviz
def test_the_answer_shows_in_a_notebook_with_its_picture() -> None:
    import xml.etree.ElementTree as ET

    w = torch.randn(3, requires_grad=True)
    with tracer.record(forward=True) as rec:
        cut = w.detach()
        (cut * torch.ones(3, requires_grad=True)).sum().backward()
    answer = tracer.why(w, rec)
    bundle = answer._repr_mimebundle_()
    assert bundle["text/plain"] == answer.text
    assert bundle["text/html"].startswith("<pre>w.grad is None because")
    svg = ET.fromstring(answer.svg())
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "cut: .detach()" in texts and "w" in texts and ".grad is None" in texts
    assert "why w.grad is None: detach" in texts
    dot = answer.to_dot()
    assert dot.count("style=dashed") == 2  # into the cut, and from it to w
    assert repr(answer).startswith("<why w: detach at ")


def test_the_forward_record_changes_nothing_under_torch_func_and_compile() -> None:
    x = torch.randn(4)

    def f(t: torch.Tensor) -> torch.Tensor:
        return (t.sin() * t).sum()

    plain = torch.func.grad(f)(x)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    # a compiled function (not torch.compile(module), which warns when another test left global module hooks)
    compiled = torch.compile(lambda t: model(t), backend="eager")
    compiled(x).sum().backward()
    plain_weight_grad = model.weight.grad.clone()  # type: ignore[union-attr]
    model.zero_grad(set_to_none=True)
    with tracer.record(forward=True) as rec:
        recorded = torch.func.grad(f)(x)
        compiled(x).sum().backward()  # torch.compile traces through the mode: the mode stays out of its way
    assert torch.equal(recorded, plain)
    assert torch.equal(model.weight.grad, plain_weight_grad)  # type: ignore[arg-type]
    assert rec.forward is not None and rec.forward.record.dropped == 0


def test_the_forward_record_keeps_the_users_hooks_firing_alike() -> None:
    def run() -> list[torch.Tensor]:
        seen: list[torch.Tensor] = []
        torch.manual_seed(1)
        w = torch.randn(5, requires_grad=True)
        h = torch.tanh(w * 3)
        h.register_hook(lambda g: seen.append(g.clone()))
        w.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.clone()))  # type: ignore[union-attr]
        (h * h).sum().backward()
        return seen

    plain = run()
    with tracer.record(forward=True):
        recorded = run()
    assert len(recorded) == len(plain) == 2
    assert all(torch.equal(a, b) for a, b in zip(recorded, plain, strict=True))


def test_a_training_loop_in_the_block_still_finds_the_cut(tmp_path: Path) -> None:
    answer, line = ask(
        tmp_path,
        """
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(3):
            optimizer.zero_grad()
            with torch.no_grad():
                hidden = model[1](model[0](torch.randn(6, 3)))  # <-
            loss = model[2](hidden).pow(2).mean()
            loss.backward()
            optimizer.step()
        """,
        "model.0.weight",
    )
    assert answer.cause is Cause.NO_GRAD and answer.line == line, answer.text
