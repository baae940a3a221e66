"""The public API is the contract users and tests rely on: every name of tracer.__all__ imports from `tracer`."""

from __future__ import annotations

import tracer

# The names the design card and the docs promise; a name removed or renamed is a break for users.
PUBLIC = [
    "AccumulationPoint",
    "Check",
    "Decomposition",
    "DecompositionUnavailable",
    "DrawingTooLargeError",
    "Edge",
    "Flag",
    "GradtraceError",
    "GradtraceWarning",
    "GraphMismatch",
    "GraphvizMissingError",
    "Health",
    "Jacobian",
    "JacobianResult",
    "Leaf",
    "Options",
    "Recorder",
    "Seed",
    "Series",
    "Stats",
    "Step",
    "Structure",
    "TensorInfo",
    "Timeline",
    "TooManyPaths",
    "Trace",
    "TraceDiff",
    "TraceFormatError",
    "accumulation_points",
    "count_paths",
    "decompose",
    "diff",
    "health",
    "jacobian",
    "load",
    "norm_profile_svg",
    "paths",
    "paused",
    "record",
    "structure",
    "summary",
    "summary_data",
    "timeline",
    "trace",
    "why",
]


def test_every_public_name_imports_from_tracer() -> None:
    assert set(PUBLIC) <= set(tracer.__all__)
    for name in tracer.__all__:
        assert getattr(tracer, name) is not None, name


def test_the_records_methods_reach_the_upper_rooms() -> None:
    """Trace's own methods work through the seam (model/seam.py), connected when `tracer` is imported."""
    import torch

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    t = tracer.trace((x * x).sum())
    assert t.graph.number_of_nodes() > 0
    assert "digraph" in t.to_dot()
    assert tracer.load(t.to_json()) == t
    assert "MulBackward0" in t.summary()
    assert "text/plain" in t._repr_mimebundle_()
