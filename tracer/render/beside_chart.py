"""The gradient-norm profile chart that stands beside a picture, its points in that picture's colours."""

from __future__ import annotations

from ..analyse.health import health
from .picture import Picture
from .profile_chart import norm_profile_svg
from .scene import colour_scale
from .side_by_side import CHART_WIDTH


def chart_beside(picture: Picture) -> str:
    """The profile chart of the picture's pass, with the colour scale the picture draws with: pictures side by
    side colour a norm alike (the module view's scale also spans its boxes' norms)."""
    extra = picture.modules.norms() if picture.modules is not None else ()
    scale = colour_scale(picture.trace, picture.opts, extra)
    return norm_profile_svg(health(picture.trace), width=CHART_WIDTH, colour=scale.colour)
