"""gradtrace's own exceptions: what every room may raise and every caller may catch."""

from __future__ import annotations


class GradtraceError(Exception):
    """Base class of the errors gradtrace raises itself."""


class TraceFormatError(GradtraceError, ValueError):
    """A trace file or text that is not a valid gradtrace trace."""


class GraphvizMissingError(GradtraceError, RuntimeError):
    """Graphviz's `dot` is needed for SVG/PNG/PDF and is not installed."""


class DrawingTooLargeError(GradtraceError, ValueError):
    """A picture with more nodes (or a stepper with more frames) than the limit the caller allowed."""


class DrawingOptionError(GradtraceError, ValueError):
    """A drawing option this trace cannot follow: a focus= it does not have, view='modules' without module tags."""


class ValuesNotKeptError(GradtraceError, ValueError):
    """A recorded tensor's values were asked for (np.asarray, torch.as_tensor, .tolist()) where only its
    statistics were kept."""
