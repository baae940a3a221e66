"""Committed outputs do not depend on one CPU's last bits: compared at the shown precision, a rebuild with other
vector kernels matches, and a real change is still caught."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracer.render.shown_precision import mismatch

ROOT = Path(__file__).resolve().parent.parent
GRADTRACE = Path(sys.executable).with_name("gradtrace")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("‖·‖ 3.9099374 · max 1.1083525", "‖·‖ 3.9099374 · max 1.1083526"),  # the 8th digit of a tooltip
        ("mean 0 · 0% zeros", "mean 3.4e-17 · 0% zeros"),  # a cancellation that lands on 0 elsewhere
        ("norm 23.127787 (exact)", "norm 23.127783 (exact)"),  # 12 float64 layers: 2e-7 apart
        ("min −1e-12 max 2", "min 1e-12 max 2"),
    ],
)
def test_last_bits_are_the_same_picture(before: str, after: str) -> None:
    assert mismatch(before, after) is None


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("x.grad = (2, 4)", "x.grad = (2, 5)"),  # another gradient
        ("‖·‖ 3.9099374", "‖·‖ 3.9109374"),  # 3e-4 apart: a real change
        ("0% zeros", "4.17% zeros"),
        ('n1 -> n2 [color="#439e46"]', 'n1 -> n3 [color="#439e46"]'),  # another edge
        ('color="#439e46"', 'color="#439e47"'),  # another colour
        ("step 5 MulBackward0", "step 5 AddBackward0"),
        ("a 1 b", "a 1 b c"),
    ],
)
def test_a_real_change_is_caught(before: str, after: str) -> None:
    assert mismatch(before, after) is not None


@pytest.mark.slow
@pytest.mark.parametrize("capability", ["default", "avx2"])
def test_other_vector_kernels_give_the_committed_gallery_and_goldens(capability: str, tmp_path: Path) -> None:
    """ATEN_CPU_CAPABILITY makes torch use the kernels of an older CPU (other rounding, other summation order):
    the stand-in for a fresh clone on another machine. The gallery check and the golden tests must pass there."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    check = subprocess.run([str(GRADTRACE), "gallery", "--check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    goldens = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "golden", "tests/test_render_dot.py",
         "tests/test_render_modules_page.py", "tests/test_analyse_summary.py"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert goldens.returncode == 0, goldens.stdout[-3000:]
