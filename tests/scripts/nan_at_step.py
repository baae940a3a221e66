"""A small training loop whose input turns NaN at one step: `python nan_at_step.py STEPS NAN_STEP` (200, 150).

The NaN reaches the gradients of that step's backward pass only (the step itself is skipped by the optimizer, as
a loss scaler would), so the timeline and `gradtrace run` must show it at exactly that pass.
"""

from __future__ import annotations

import sys

import torch


def main(steps: int, nan_step: int) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    x, target = torch.randn(16, 4), torch.randn(16, 2)
    for step in range(1, steps + 1):
        batch = x.clone()
        if step == nan_step:
            batch[0, 0] = float("nan")
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(batch), target)
        loss.backward()
        finite = all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)
        if finite:
            optimiser.step()
    print(f"final loss {torch.nn.functional.mse_loss(model(x), target).item():.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, int(sys.argv[2]) if len(sys.argv) > 2 else 150)
