"""gradtrace: see PyTorch's backward pass — every vector-Jacobian product, recorded, analysed and drawn."""

from __future__ import annotations

from .errors import DrawingTooLargeError, GradtraceError, GraphvizMissingError, TraceFormatError
from .model import Check, Edge, Jacobian, Leaf, Options, Seed, Stats, Step, TensorInfo, Trace
from .recorder import GradtraceWarning, Recorder, record, trace
from .serial import load

__all__ = [
    "Check",
    "DrawingTooLargeError",
    "Edge",
    "GradtraceError",
    "GradtraceWarning",
    "GraphvizMissingError",
    "Jacobian",
    "Leaf",
    "Options",
    "Recorder",
    "Seed",
    "Stats",
    "Step",
    "TensorInfo",
    "Trace",
    "TraceFormatError",
    "load",
    "record",
    "trace",
]

__version__ = "0.1.0"
