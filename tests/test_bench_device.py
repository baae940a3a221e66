"""`python -m bench --device cuda` exists: on a machine without a GPU it says so in one line and exits 2."""

from __future__ import annotations

import pytest
import torch

from bench.__main__ import main


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the benchmark would run")
def test_device_cuda_without_a_gpu_is_a_clean_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--device cuda: this machine has no CUDA GPU") and "Traceback" not in err
