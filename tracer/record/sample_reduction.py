"""Long blocks: the samples of passes that wait to be read are reduced to their statistics, in batches.

Why: a pass kept unread holds a 1,024-element sample per large gradient (40 KiB of a 256-512-512-10 MLP's 55 KiB),
though its Trace needs only seven numbers of each. The statistics are computed exactly as building the Trace
computes them (tensors.segment_stats: each sample's numbers depend on its own values only), so a reduced pass reads
back the same Trace. The most recent passes keep their samples: a block of a few passes never pays for this, a long
one pays once per batch, with one batched numpy reduction over many passes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

from ..model.records import Stats
from .tensors import segment_stats

KEEP_RAW = 32  # passes waiting to be read that keep their samples
BATCH = 32  # passes reduced together


class SampleReducer:
    """One record() block's passes waiting to be read, oldest first."""

    def __init__(self) -> None:
        self._waiting: list[Any] = []  # _Pending objects (recorder.py), whose table is reduced under their lock

    def add(self, pending: Any) -> None:
        self._waiting.append(pending)
        if len(self._waiting) >= KEEP_RAW + BATCH:
            batch, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
            reduce_pending(batch)


def reduce_pending(batch: list[Any]) -> None:
    """Reduce the tables of these pending passes (those not built yet) in one go."""
    held: list[Any] = []
    try:
        for pending in batch:
            if pending.lock.acquire(blocking=False):  # being built right now: nothing to reduce
                held.append(pending)
        reduce_tables([p.table for p in held if p.table is not None])
    finally:
        for pending in held:
            pending.lock.release()
    _give_back_free_memory()


@functools.cache
def _malloc_trim() -> Any:
    """glibc's malloc_trim, or None (another C library: nothing to do)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return getattr(libc, "malloc_trim", None)
    except OSError:
        return None


def _give_back_free_memory() -> None:
    """The samples just let go sat between the long-lived records of other passes: glibc keeps such holes in its
    heap (measured: 2,000 unread MLP passes held 166 MiB of RSS, 65 MiB after trimming). malloc_trim hands their
    pages back to the system; once per batch it costs about a millisecond."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def reduce_tables(tables: list[Any]) -> None:
    """Compute the statistics of every reducible entry of these tables and let their samples go."""
    rows = [(table, entry) for table in tables for entry in table.reducible()]
    results: dict[int, dict[int, Stats]] = {id(t): {} for t in tables}
    for exact in (True, False):
        group = [(t, e) for t, e in rows if e[3] == exact]
        if not group:
            continue
        stats = segment_stats([e[1] for _, e in group], [e[2] for _, e in group], [e[4] for _, e in group], exact=exact)
        for (t, e), st in zip(group, stats, strict=True):
            results[id(t)][e[0]] = st
    for table in tables:
        found = results[id(table)]
        if found:
            table.take_stats(found)
