"""Resource bounds: a 1e8-element gradient keeps only statistics, a 20,000-node pass is recorded and summarised
in bounded memory, and the renderer refuses to lay out more than its limit with a way to a smaller picture.

Each scenario runs in a fresh interpreter (tests/bounds_worker.py), where peak memory measures it alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fuzzing import TALLY

ROOT = Path(__file__).resolve().parent.parent


def scenario(name: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.bounds_worker", name],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.slow
def test_a_1e8_element_gradient_keeps_only_statistics() -> None:
    r = scenario("big")
    assert r["same_bits"]
    assert r["tensor_mib"] > 380
    # No copy of the 381 MiB gradient is kept: the traced pass peaks within a sixth of one copy of the untraced.
    assert r["extra_peak_mib"] < r["tensor_mib"] / 6, r["extra_peak_mib"]
    assert r["json_bytes"] < 20_000 and r["values_kept_of_big_tensors"] == 0
    # every statistic comes from a sample of 1,024 elements and says so; the gradient into the leaf and the
    # leaf's own read every element for the norm (norm_exact): torch's own, within float32's rounding
    assert [tuple(e) for e in r["estimates"]] == [(1024, False), (1024, False), (1024, True), (1024, True)]
    assert r["leaf_norm_exact"] and r["leaf_norm"] == r["leaf_norm_torch"] and r["leaf_norm_error"] < 1e-4
    low, high, torch_low, torch_high = r["leaf_min_max_torch"]
    assert torch_low <= low <= high <= torch_high  # estimated from the sample: inside the true range
    TALLY["resource scenarios within bounds"] += 1


@pytest.mark.slow
def test_a_20k_node_pass_is_recorded_summarised_and_refused_for_layout() -> None:
    r = scenario("deep")
    assert r["same_bits"] and r["complete"]
    assert r["nodes"] == r["steps"] == 20_002  # 20,000 ops, the sum, the leaf
    assert r["graph_nodes"] > 20_002
    assert r["extra_peak_mib"] < 1024, r["extra_peak_mib"]  # measured: about 120 MiB
    assert r["summary"].startswith("pass #1: backward of") and "20002 steps" in r["summary"]
    refusal = r["refusal"]
    assert refusal.startswith("DrawingTooLargeError: this pass has ") and "more than max_nodes=2000" in refusal
    # the ways out: the module view (how to record the tags it needs), focus=, a higher limit, DOT/JSON
    assert "For the module view" in refusal and "tracer.record(modules=True)" in refusal
    assert "focus='NAME'" in refusal and "max_nodes=30003" in refusal
    assert "DOT and JSON output have no limit" in refusal
    TALLY["resource scenarios within bounds"] += 1
