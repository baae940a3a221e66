"""gradtrace: see PyTorch's backward pass — every vector-Jacobian product, recorded, analysed and drawn."""

from __future__ import annotations

from typing import Any

from .analyse.accumulation import AccumulationPoint, accumulation_points
from .analyse.diff import GraphMismatch, TraceDiff, diff
from .analyse.graph import build_graph
from .analyse.health import Flag, Health, health
from .analyse.paths import Decomposition, DecompositionUnavailable, TooManyPaths, count_paths, decompose, paths
from .analyse.structure import Structure, structure
from .analyse.summary import summary, summary_data
from .analyse.timeline import timeline
from .analyse.timeline import to_csv as timeline_csv
from .analyse.timeline import to_json as timeline_json
from .display.notebook import TraceView, mimebundle
from .display.why_call import why
from .model import seam
from .model.errors import DrawingTooLargeError, GradtraceError, GraphvizMissingError, TraceFormatError
from .model.records import Check, Edge, Jacobian, Leaf, Options, Seed, Stats, Step, TensorInfo, Trace
from .model.serial import dumps, load
from .model.timeline_records import Series, Timeline
from .model.version import __version__ as __version__
from .record.jacobian import JacobianResult, jacobian
from .record.recorder import GradtraceWarning, Recorder, paused, record, trace
from .render.draw import save, svg, to_dot
from .render.profile_chart import norm_profile_svg
from .render.timeline_chart import save_timeline, timeline_svg

# The records' own methods (t.svg(), t.summary(), display in Jupyter, ...) reach the upper rooms through this one
# door (tracer/model/seam.py): the model, the recorder and the analysis never import drawing or display.
seam.connect(
    seam.Upstairs(
        to_json=dumps,
        graph=build_graph,
        summary=summary,
        to_dot=to_dot,
        svg=svg,
        save=save,
        chart=norm_profile_svg,
        show=TraceView,
        mimebundle=mimebundle,
        timeline=timeline,
        timeline_svg=timeline_svg,
        timeline_csv=timeline_csv,
        timeline_json=timeline_json,
        timeline_save=save_timeline,
    )
)

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


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext tracer` in IPython/Jupyter: adds the %%gradtrace cell magic (IPython is imported only here)."""
    from .display.magic import load_ipython_extension as load

    load(ipython)
