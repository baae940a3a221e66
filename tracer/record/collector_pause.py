"""No automatic garbage collection while a pass is recorded, without touching the user's gc switch."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection while a pass is recorded; the user's settings are kept.

    The hooks and the trace create thousands of small objects; with the collector on, those alive mid-pass
    get promoted and every few passes trigger a full collection of the whole process (torch holds ~190k
    objects: ~90 ms). Paused, the temporaries die by reference counting before any collection sees them.

    Paused by a first threshold of 0 (documented to stop automatic collection), never by gc.disable(): the
    on/off switch stays the user's alone, so a gc.disable() or gc.enable() in the user's code during the pass
    (in this thread or another) holds after it. Passes running at once (nested, or in several threads) share
    one pause: the first sets it, the last lifts it, unless the user set thresholds of their own meanwhile.
    """
    with _Pause.lock:
        if _Pause.passes == 0:
            _Pause.saved = gc.get_threshold()
            _Pause.ours = (0, *_Pause.saved[1:])
            gc.set_threshold(*_Pause.ours)
        _Pause.passes += 1
    try:
        yield
    finally:
        with _Pause.lock:
            _Pause.passes -= 1
            if _Pause.passes == 0 and gc.get_threshold() == _Pause.ours:
                gc.set_threshold(*_Pause.saved)


class _Pause:
    """The one collector pause shared by every pass being recorded, in every thread."""

    lock = threading.Lock()
    passes = 0  # passes running now
    saved: tuple[int, ...] = ()  # the thresholds before the first of them
    ours: tuple[int, ...] = ()  # the thresholds it set
