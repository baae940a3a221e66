"""Draw docs/pictures/training-timeline.svg, the README's picture of gradient flow over a small training run.

A five-layer sigmoid MLP (the textbook case: gradients shrink on their way back to the input) fitting a wavy
function for 200 steps of Adam; at step 150 one input of the batch is NaN, as a corrupt sample would be, and the
optimizer skips that step. The timeline shows each layer's gradient a decade or so below the next, all of them NaN
at pass 150 only, and the update ratio ‖Δw‖/‖w‖ of each layer. Run: .venv/bin/python docs/pictures/training_timeline.py
"""

from __future__ import annotations

from pathlib import Path

import torch

import tracer

HERE = Path(__file__).resolve().parent


def main() -> None:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for width_in in (8, 32, 32, 32):
        layers += [torch.nn.Linear(width_in, 32), torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(32, 1))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.randn(256, 8)
    y = torch.sin(3 * x[:, :1]) + x[:, 1:2] ** 2
    with tracer.record(model=model, keep="first,last,flagged") as rec:
        for step in range(1, 201):
            batch = x.clone()
            if step == 150:
                batch[3, 0] = float("nan")  # a corrupt sample
            optimiser.zero_grad()
            torch.nn.functional.mse_loss(model(batch), y).backward()
            if all(bool(p.grad.isfinite().all()) for p in model.parameters() if p.grad is not None):
                optimiser.step()
    line = rec.timeline()
    line.save(HERE / "training-timeline.svg", modules=["model.0", "model.4", "model.8"])
    print(line, "->", HERE / "training-timeline.svg")


if __name__ == "__main__":
    main()
