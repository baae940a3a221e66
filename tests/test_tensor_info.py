"""In a notebook a recorded tensor reads and computes like a tensor (issue 17): torch's repr where the values were
kept (statistics in one line where they were not), numpy's array protocol, torch.as_tensor and torch functions
(`torch.allclose(x.grad, info)`), and a dtype equal to torch's; where only statistics were kept, one clear error."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
import torch

import tracer
from tracer.model.errors import GradtraceError, ValuesNotKeptError
from tracer.model.records import DType, Stats, TensorInfo

AS_TENSOR_READS_DLPACK = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 6)
needs_dlpack_as_tensor = pytest.mark.skipif(
    not AS_TENSOR_READS_DLPACK, reason="torch.as_tensor reads __dlpack__ from torch 2.6 (use info.as_tensor())"
)


def _leaf_grad(x: torch.Tensor, f: Any, **options: Any) -> tuple[torch.Tensor, TensorInfo]:
    """torch's x.grad for f(x).sum() and the recorded one."""
    x = x.detach().clone().requires_grad_(True)
    t = tracer.trace(f(x).sum(), names={"x": x}, **options)
    assert x.grad is not None
    info = t.leaves["x"].grad
    assert info is not None
    return x.grad, info


TORCH_LIKE = {
    "0-d float64 (the issue's)": (torch.tensor(2.0, dtype=torch.float64), lambda x: 3.57 * x**2 + x),
    "whole numbers": (torch.tensor([1.0, 2.0, 3.5], dtype=torch.float64), lambda x: x**2 * 3),
    "four decimals": (torch.tensor([0.5, -1.5, 2.0]), lambda x: x**3 / 7),
    "2-d rows aligned": (torch.arange(12.0).reshape(3, 4), lambda x: x**2 / 7),
    "3-d": (torch.linspace(-1, 1, 24).reshape(2, 3, 4), lambda x: torch.sin(x * 3)),
    "scientific": (torch.tensor([1e-3, 1.0, 30.0]), lambda x: x**3),
    "float16": (torch.tensor([1.0, 2.0], dtype=torch.float16), lambda x: x * 3),
    "non-finite": (torch.tensor([0.0, 1.0, 4.0]), lambda x: x.sqrt()),
}


@pytest.mark.parametrize("case", TORCH_LIKE, ids=list(TORCH_LIKE))
def test_repr_reads_like_torchs_with_the_same_numbers(case: str, hooks: str) -> None:
    x, f = TORCH_LIKE[case]
    grad, info = _leaf_grad(x, f)
    ours = repr(info)
    assert (ours.startswith("TensorInfo(") and "\n" not in ours) or x.dim() > 1
    # the same text as torch's repr of the same gradient, but for the name (and the indent it sets)
    assert ours.replace("TensorInfo(", "tensor(", 1).split() == repr(grad).split()


def test_repr_where_only_statistics_were_kept(hooks: str) -> None:
    w = torch.linspace(-1, 1, 10_000).reshape(100, 100)
    grad, info = _leaf_grad(w, lambda w: w**2)
    assert not info.kept
    text = repr(info)
    assert "\n" not in text and len(text) < 160, text
    assert text.startswith("TensorInfo(shape=[100, 100], dtype=torch.float32, norm=")
    norm = float(re.search(r"norm=([^,]+)", text).group(1))  # type: ignore[union-attr]
    assert norm == pytest.approx(float(grad.norm()), rel=1e-3)  # shown at 4 significant digits
    assert f"min={float(grad.min()):.4g}" in text and f"max={float(grad.max()):.4g}" in text


def test_stats_repr_is_short_and_says_when_sampled() -> None:
    exact = Stats(norm=14.280500000000004, min=1.0, max=3.0, mean=2.0, zeros=0.25, nan=0, inf=0)
    assert repr(exact) == "Stats(norm=14.28, min=1, max=3, mean=2, zeros=25%)"
    sampled = Stats(norm=2.0, min=-1.0, max=1.0, mean=0.0, zeros=0.0, nan=1, inf=2, sampled=1024, norm_exact=False)
    assert repr(sampled) == (
        "Stats(norm=2, min=-1, max=1, mean=0, zeros=0%, nan=1, inf=2, sampled=1024, norm_exact=False)"
    )


@pytest.mark.parametrize("capture", ["auto", "full"])
def test_numpy_and_torch_read_the_kept_values_exactly(capture: str, hooks: str) -> None:
    x = torch.linspace(-2, 3, 7, dtype=torch.float64) if capture == "auto" else torch.linspace(-2, 3, 5000)
    grad, info = _leaf_grad(x, lambda x: x.sin() * x, capture=capture)
    array = np.asarray(info)
    assert array.dtype == grad.numpy().dtype and array.shape == tuple(grad.shape)
    assert np.array_equal(array, grad.numpy())
    assert torch.equal(info.as_tensor(), grad)
    assert torch.equal(torch.utils.dlpack.from_dlpack(info), grad)
    assert torch.allclose(grad, info) and torch.allclose(info, grad)  # type: ignore[arg-type]
    assert torch.equal(grad - info, torch.zeros_like(grad))  # type: ignore[operator]
    assert np.allclose(info, grad.numpy())
    array[0] = 99.0  # a new array each time: the record is not changed through it
    assert np.asarray(info)[0] == grad[0]


@needs_dlpack_as_tensor
def test_torch_as_tensor_of_a_record(hooks: str) -> None:
    grad, info = _leaf_grad(torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64), lambda x: x**3)
    assert torch.equal(torch.as_tensor(info), grad)  # type: ignore[arg-type]
    assert torch.equal(torch.tensor(info), grad)  # type: ignore[arg-type]
    bf = torch.tensor([1.0, 2.5], dtype=torch.bfloat16)
    grad, info = _leaf_grad(bf, lambda x: x * 3)
    assert torch.as_tensor(info).dtype == torch.bfloat16 and torch.equal(torch.as_tensor(info), grad)  # type: ignore[arg-type]


def test_the_issues_example() -> None:
    """`torch.allclose(x.grad, t.leaves["x"].grad)` raised TypeError; the repr was a wall of fields."""
    x = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    t = tracer.trace(3.57 * x**2 + x, names={"x": x})
    info = t.leaves["x"].grad
    assert x.grad is not None and info is not None
    assert torch.allclose(x.grad, info)  # type: ignore[arg-type]
    assert repr(info) == repr(x.grad).replace("tensor", "TensorInfo") == "TensorInfo(15.2800, dtype=torch.float64)"


def test_dtype_equals_torchs_and_numpys_and_stays_a_name() -> None:
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    t = tracer.trace((x * 2).sum(), names={"x": x})
    info = t.leaves["x"].grad
    assert info is not None and x.grad is not None
    dtype: Any = info.dtype  # typed as the str it is; mypy would call a comparison with torch's dtype impossible
    assert dtype == x.grad.dtype and x.grad.dtype == dtype and dtype == torch.double
    assert (dtype != torch.float64) is False and dtype != torch.float32 and torch.float32 != dtype
    assert dtype == np.float64 and dtype == np.dtype("float64") and dtype != np.float32
    assert dtype == "float64" and {"float64": 1}[dtype] == 1 and f"{dtype}" == "float64"
    assert dtype != 64 and dtype != None  # noqa: E711  # anything else is simply unequal
    assert DType("bool") == torch.bool and DType("bfloat16") == torch.bfloat16 and DType("int64") != torch.int32
    # the trace file is unchanged: a plain string, loaded back as the same
    dtypes = _dtypes(json.loads(t.to_json()))
    assert dtypes and set(dtypes) <= {"float64"}
    again = tracer.load(t.to_json())
    assert again == t and type(again.leaves["x"].grad.dtype) is DType  # type: ignore[union-attr]


def _dtypes(data: Any) -> list[Any]:
    """Every "dtype" value in a JSON document."""
    if isinstance(data, dict):
        return [v for k, v in data.items() if k == "dtype"] + [d for v in data.values() for d in _dtypes(v)]
    return [d for v in data for d in _dtypes(v)] if isinstance(data, list) else []


def test_only_statistics_kept_is_one_clear_error(hooks: str) -> None:
    w = torch.ones(100, 100, requires_grad=True)
    t = tracer.trace((w * 3).sum(), names={"w": w})
    info = t.leaves["w"].grad
    assert info is not None and w.grad is not None and not info.kept
    attempts = {
        "np.asarray()": lambda: np.asarray(info),
        "torch.as_tensor()": info.as_tensor,
        "torch.allclose()": lambda: torch.allclose(w.grad, info),  # type: ignore[arg-type]
        "tolist()": info.tolist,
    }
    if AS_TENSOR_READS_DLPACK:
        attempts["torch.as_tensor()"] = lambda: torch.as_tensor(info)  # type: ignore[arg-type]
    for asked, attempt in attempts.items():
        with pytest.raises(ValuesNotKeptError) as raised:
            attempt()
        message = str(raised.value)
        assert message.startswith(f"{asked}: the values of this recorded [100, 100] float32 tensor were not kept")
        assert "capture='full'" in message and "max_values=10000" in message and ".stats" in message
        assert isinstance(raised.value, GradtraceError) and isinstance(raised.value, ValueError)
    # with the values kept, the same calls work
    w.grad = None
    t = tracer.trace((w * 3).sum(), names={"w": w}, capture="full")
    assert torch.allclose(w.grad, t.leaves["w"].grad)  # type: ignore[arg-type]


def test_an_empty_tensor() -> None:
    e = torch.ones(0, 3, requires_grad=True)
    t = tracer.trace((e * 3).sum(), names={"e": e})
    info = t.leaves["e"].grad
    assert info is not None
    assert repr(info) == "TensorInfo([], shape=[0, 3], dtype=torch.float32)"
    assert np.asarray(info).shape == (0, 3) and info.as_tensor().shape == (0, 3)
