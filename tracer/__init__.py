"""gradtrace: see PyTorch's backward pass — every vector-Jacobian product, recorded, analysed and drawn."""

from __future__ import annotations

from typing import Any

from .accumulation import AccumulationPoint, accumulation_points
from .diff import GraphMismatch, TraceDiff, diff
from .errors import DrawingTooLargeError, GradtraceError, GraphvizMissingError, TraceFormatError
from .health import Flag, Health, health
from .jacobian import JacobianResult, jacobian
from .model import Check, Edge, Jacobian, Leaf, Options, Seed, Stats, Step, TensorInfo, Trace
from .paths import Decomposition, DecompositionUnavailable, TooManyPaths, count_paths, decompose, paths
from .profile_chart import norm_profile_svg
from .recorder import GradtraceWarning, Recorder, record, trace
from .serial import load
from .structure import Structure, structure
from .summary import summary, summary_data

__all__ = [
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
    "Stats",
    "Step",
    "Structure",
    "TensorInfo",
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
    "record",
    "structure",
    "summary",
    "summary_data",
    "trace",
]

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext tracer` in IPython/Jupyter: adds the %%gradtrace cell magic (IPython is imported only here)."""
    from .magic import load_ipython_extension as load

    load(ipython)
