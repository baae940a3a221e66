"""The plain, frozen records of a backward pass and their JSON form: the ground floor, importing nothing of ours."""

from .records import (
    CAPTURES,
    Capture,
    Check,
    Edge,
    Jacobian,
    Leaf,
    LeafKind,
    NDArray,
    Options,
    PassKind,
    Scalar,
    Seed,
    Shape,
    Stats,
    Step,
    TensorInfo,
    Trace,
)
from .version import __version__

__all__ = [
    "CAPTURES",
    "Capture",
    "Check",
    "Edge",
    "Jacobian",
    "Leaf",
    "LeafKind",
    "NDArray",
    "Options",
    "PassKind",
    "Scalar",
    "Seed",
    "Shape",
    "Stats",
    "Step",
    "TensorInfo",
    "Trace",
    "__version__",
]
