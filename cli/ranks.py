"""Which torch.distributed rank this process is, so each rank's files carry it in their names."""

from __future__ import annotations

import os
import sys


def current_rank() -> int | None:
    """The rank of an initialised process group, else RANK / LOCAL_RANK (set by torchrun), else None."""
    dist = sys.modules.get("torch.distributed")  # only when the script used it: never import it ourselves
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    except (RuntimeError, ValueError):  # a group being torn down
        pass
    for variable in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(variable, "").strip()
        if value.isdigit():
            return int(value)
    return None
