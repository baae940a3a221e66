"""torch's backward errors come through unchanged (type, message first) with a plain-words fix added."""

from __future__ import annotations

import pytest
import torch

import tracer
from tracer.record.explain import explain


def _notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", []))


def _torch_error(fn) -> RuntimeError:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError) as info:
        fn()
    return info.value


def test_non_scalar_output_without_seed() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    plain = _torch_error(lambda: (2 * x).backward())
    with pytest.raises(RuntimeError) as info:
        tracer.trace(2 * x)
    assert type(info.value) is type(plain)
    assert str(info.value) == str(plain)  # torch's own message, first and unchanged
    notes = _notes(info.value)
    assert "shape [2]" in notes and "gradient=torch.ones_like(y)" in notes and "y.sum().backward()" in notes
    assert x.grad is None


def test_old_tutorial_seed_of_shape_1_over_1x4_output() -> None:
    """002 wrote V.backward(torch.FloatTensor([1.0])) for a [1, 4] output; old torch broadcast the seed."""
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Mismatch in shape") as info:
        tracer.trace(x**2 + x**4, torch.tensor([1.0]))
    notes = _notes(info.value)
    assert "[1]" in notes and "[1, 4]" in notes
    assert "g.expand_as(y)" in notes and "torch.full([1, 4], 1.0)" in notes
    # the modern equivalent gives the tutorial's numbers
    tracer.trace(x**2 + x**4, torch.tensor([1.0]).expand(1, 4))
    assert x.grad.tolist() == [[6.0, 36.0, 114.0, 264.0]]


@pytest.mark.parametrize("seed", [[[100.0, 300.0]], [[100.0], [300.0]]], ids=["1x2", "2x1"])
def test_old_tutorial_seed_bigger_than_a_1x1_output(seed: list[list[float]]) -> None:
    """001 seeded a [1, 1] output of torch.mm with [[100, 300]] and [[100], [300]]: old torch summed both to [[400]]."""
    a = torch.tensor([[1.0, 2.0]])
    x = torch.tensor([[3.0], [5.0]], requires_grad=True)
    g = torch.tensor(seed)
    plain = _torch_error(lambda: torch.mm(a, x).backward(g))
    with pytest.raises(RuntimeError, match="Mismatch in shape") as info:
        tracer.trace(torch.mm(a, x), g)
    assert str(info.value) == str(plain)
    notes = _notes(info.value)
    assert f"shape {list(g.shape)}" in notes and "[1, 1]" in notes
    assert "g.sum_to_size(y.shape)" in notes and "[[400.0]]" in notes
    assert x.grad is None
    tracer.trace(torch.mm(a, x), g.sum_to_size(1, 1))
    assert x.grad.tolist() == [[400.0], [800.0]]  # the tutorial's printed result


def test_seed_with_the_right_count_but_wrong_shape() -> None:
    x = torch.tensor([[1.0, 2.0]], requires_grad=True)
    with pytest.raises(RuntimeError) as info:
        tracer.trace(x * 2, torch.ones(2, 1))
    assert "g.reshape(y.shape)" in _notes(info.value)


def test_output_that_needs_no_gradient() -> None:
    with pytest.raises(RuntimeError, match="does not require grad") as info:
        tracer.trace(torch.tensor([1.0]).sum())
    assert "requires_grad=True" in _notes(info.value)


def test_second_backward_is_explained() -> None:
    x = torch.tensor([1.0], requires_grad=True)
    y = (x.exp()).sum()
    tracer.trace(y)
    with pytest.raises(RuntimeError) as info:
        tracer.trace(y)
    assert "retain_graph=True" in _notes(info.value)


def test_explanation_is_added_once() -> None:
    exc = RuntimeError("grad can be implicitly created only for scalar outputs")
    from tracer.record.explain import add_explanation

    add_explanation(exc)
    add_explanation(exc)
    assert len(exc.__notes__) == 1


def test_without_exception_notes_the_explanation_follows_torchs_message() -> None:
    """Python 3.10 has no add_note and prints no __notes__: the explanation goes after torch's words, once."""
    from tracer.record.explain import EXPLANATION_MARK, add_explanation, attach_note

    message = "grad can be implicitly created only for scalar outputs"
    exc = RuntimeError(message)
    text = explain(exc)
    assert text is not None
    attach_note(exc, text, notes_supported=False)
    add_explanation(exc)  # already explained: nothing more
    assert str(exc) == f"{message}\n\n{text}" and str(exc).startswith(message)
    assert exc.__notes__ == [text] and text.startswith(EXPLANATION_MARK)


def test_unknown_errors_get_no_note() -> None:
    assert explain(RuntimeError("something else entirely")) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"capture": "everything"}, "unknown capture: 'everything' (must be one of ['auto', 'stats', 'full'])"),
        ({"max_values": -1}, "max_values must be a whole number >= 0, got -1"),
        ({"jacobian_limit": 2.5}, "jacobian_limit must be a whole number >= 0, got 2.5"),
    ],
)
def test_bad_options_name_the_value_and_the_allowed_set(kwargs: dict, message: str) -> None:
    x = torch.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError) as info:
        tracer.trace(x.sum(), **kwargs)
    assert message in str(info.value)
    assert x.grad is None  # nothing ran


def test_bad_names_argument() -> None:
    x = torch.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="names= must be a dict"):
        tracer.trace(x.sum(), names=["x"])
