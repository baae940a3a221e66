"""Every gallery script runs and passes its own checks, alone and recorded; together they cover the tutorials."""

from __future__ import annotations

import pytest
import torch

from tests.gallery_helpers import entries, script_ids, scripts
from tracer.gallery.entries import torch_state_kept
from tracer.record.script_runner import run_script

BY_ID = {s.id: s for s in scripts()}


@pytest.mark.parametrize("script_id", script_ids())
def test_script_passes_its_checks_when_run_alone(script_id: str) -> None:
    # As `python SCRIPT.py`: nothing records, the asserts (closed forms, torch's own gradients) must still hold.
    script = BY_ID[script_id]
    with torch_state_kept():
        outcome = run_script(script.path, [])
    if outcome.error is not None:
        raise outcome.error
    assert outcome.exit_code == 0


@pytest.mark.parametrize("script_id", script_ids())
def test_script_passes_its_checks_when_recorded(script_id: str) -> None:
    entry = entries()[script_id]  # run() raises GalleryError when an assert fails
    assert entry.passes, "every entry makes at least one backward pass"
    for p in entry.passes:
        assert p.line is not None and p.code, "each pass is started by a line of the script"
        assert p.trace.source is not None and "/" not in p.trace.source  # no absolute path in the outputs


@pytest.mark.parametrize("script_id", script_ids())
def test_script_is_a_short_lesson_then_its_checks(script_id: str) -> None:
    # The page shows the lesson and folds the checks away: the lesson is the few lines a learner reads, with no
    # assert or reference computation in it; the checks come after the `# --- checks` line.
    script = BY_ID[script_id]
    lesson = [line for line in script.code.splitlines() if line.strip()]
    checks = [line for line in script.checks.splitlines() if line.strip()]
    assert 4 <= len(lesson) <= 16, f"{script_id}: {len(lesson)} lines of lesson (4-16 wanted)"
    assert 3 <= len(checks) <= 18, f"{script_id}: {len(checks)} lines of checks (3-18 wanted)"
    for word in ("assert", "tracer.paused", "torch.testing", "TUTORIAL", "functional.vjp"):
        assert word not in script.code, f"{script_id}: {word!r} belongs in the checks, not in the lesson"
    assert any(w in script.checks for w in ("functional.vjp", "functional.jacobian", "autograd.grad", "J.check")), (
        f"{script_id}: the checks compare with torch's own gradients"
    )
    assert "paused" in script.checks or "J.check" in script.checks, "the reference pass is not recorded"
    assert script.title and not script.title.endswith(".")
    assert len(script.explanation) == 1, "one paragraph of explanation"
    assert len(script.explanation[0]) > 200


def test_recording_does_not_change_a_single_gradient() -> None:
    # The recorded leaf gradients are what torch put into .grad: compare the scalar case by hand.
    x = torch.tensor([0.7073333], requires_grad=True)
    (3 * x**2).backward()
    trace = entries()["01-scalar-to-scalar/01-default-seed"].passes[0].trace
    assert trace.leaves["x"].grad is not None
    assert trace.leaves["x"].grad.values == tuple(x.grad.tolist())


def _passes():  # type: ignore[no-untyped-def]
    return [(e, p.trace) for e in entries().values() for p in e.passes]


def _nodes(trace):  # type: ignore[no-untyped-def]
    return [s.name for s in trace.steps]


def test_the_gallery_covers_every_case_of_the_issue() -> None:
    passes = _passes()
    seeds = [(t.seeds[0], t) for _, t in passes if t.seeds]

    def seed_values(values: tuple[float, ...], shape: tuple[int, ...]) -> bool:
        return any(s.v is not None and s.v.values == values and s.shape == shape for s, _ in seeds)

    # scalar to scalar with the default, a ones and a 100x seed
    assert any(s.implicit and s.shape == (1,) for s, _ in seeds)
    assert seed_values((1.0,), (1,)) and seed_values((100.0,), (1,))
    # 0-d vs [1] vs [1, 1]
    assert {(), (1,), (1, 1)} <= {s.shape for s, t in seeds if s.v is not None and s.v.numel == 1}
    # vector to scalar: sum, x[0]**3 + 2*x[1]**2, weighted squares, dot
    names = {n for _, t in passes for n in _nodes(t)}
    assert {"SumBackward0", "SelectBackward0", "DotBackward0", "MmBackward0", "StackBackward0"} <= names
    # item assignment (CopySlices) and stack, scalar and vector inputs
    assert "CopySlices" in names
    # ones_like vs sum(): the same gradient from two different graphs
    ones, summed = entries()["05-many-points/01-ones-like-vs-sum"].passes
    assert ones.trace.leaves["x"].grad == summed.trace.leaves["x"].grad
    assert _nodes(ones.trace) != _nodes(summed.trace)
    # torch.mm seeds: [1, 1] works, [1, 2] and [2, 1] are errors shown with gradtrace's note
    assert seed_values((100.0,), (1, 1))
    for entry_id in ("09-errors/03-mm-seed-1x2", "09-errors/04-mm-seed-2x1", "09-errors/02-broadcast-seed"):
        error = entries()[entry_id].error
        assert error is not None and "Mismatch in shape" in error.message
        assert any(n.startswith("gradtrace:") for n in error.notes)
    no_seed = entries()["09-errors/01-no-seed-for-a-vector"].error
    assert no_seed is not None and "only for scalar outputs" in no_seed.message and no_seed.notes
    # the tutorials' cells that fail today as written, each beside the entry with the call that works
    lyapunov = entries()["09-errors/06-one-seed-for-two-outputs"]
    assert lyapunov.error is not None and "Mismatch in shape" in lyapunov.error.message
    four = entries()["09-errors/07-four-passes-one-graph"]
    assert four.error is not None and "second time" in four.error.message
    assert [p.trace.complete for p in four.passes] == [True, False]
    assert [p.trace.options.retain_graph for p in entries()["07-jacobians/03-fan-in"].passes] == [True] * 3 + [False]
    # the Jacobian with one-hot seeds and retain_graph, and with tracer.jacobian
    assert sum(1 for _, t in passes if t.options.retain_graph) >= 10
    assert sum(1 for _, t in passes if t.kind == "grad") == 2  # tracer.jacobian's two rows
    # a matrix-valued function of a scalar: six one-hot passes of shape [3, 2]
    assert [p.trace.seeds[0].shape for p in entries()["07-jacobians/04-matrix-valued"].passes] == [(3, 2)] * 6
    # detach: an edge into a tensor that needs no gradient
    detach = entries()["08-mechanics/01-detach"].passes[0].trace
    assert any(e.target is None for n in detach.steps for e in n.edges)
    # accumulation across two passes without zero_()
    second = entries()["08-mechanics/03-accumulation"].passes[1].trace
    assert second.leaves["x"].grad_before is not None
    # control flow, Lyapunov, float64, MLP, transformer
    control = entries()["08-mechanics/02-control-flow"].passes[0].trace
    assert _nodes(control).count("MulBackward0") == 4
    assert any(t.seeds[0].dtype == "float64" for _, t in passes)
    assert any(name.startswith("model.") for name in entries()["10-models/03-mlp"].passes[0].trace.leaves)
    transformer = entries()["10-models/04-transformer-layer"]
    assert len(transformer.passes[0].trace.steps) > 40 and transformer.drawing == {"detail": "compact"}
    assert "10-models/01-lyapunov" in entries()
    # an incomplete pass (the second backward over a freed graph) is drawn, not hidden
    assert any(not t.complete for _, t in passes)
