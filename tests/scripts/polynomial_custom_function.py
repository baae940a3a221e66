"""Fit sin(x) on [-π, π] with a + b·P3(c + d·x), P3 a custom autograd.Function (Legendre polynomial of degree 3).

The shape of PyTorch's "Defining new autograd functions" tutorial: 2,000 steps of plain gradient descent, one
backward pass each, through a Function whose backward is written by hand. Used to measure what `gradtrace run`
costs on a script with thousands of passes (`python SCRIPT [STEPS]`; 2,000 by default).
"""

from __future__ import annotations

import math
import sys

import torch


class LegendrePolynomial3(torch.autograd.Function):
    """P3(x) = ½(5x³ − 3x), with its derivative 1.5(5x² − 1) in backward."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return 0.5 * (5 * x**3 - 3 * x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad_output * 1.5 * (5 * x**2 - 1)


def main(steps: int) -> None:
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    a = torch.full((), 0.0, requires_grad=True)
    b = torch.full((), -1.0, requires_grad=True)
    c = torch.full((), 0.0, requires_grad=True)
    d = torch.full((), 0.3, requires_grad=True)
    learning_rate = 5e-6
    for t in range(steps):
        y_pred = a + b * LegendrePolynomial3.apply(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        if t % 500 == 499:
            print(t + 1, loss.item())
        loss.backward()
        with torch.no_grad():
            for p in (a, b, c, d):
                p -= learning_rate * p.grad
                p.grad = None
    print(f"y = {a.item():.4f} + {b.item():.4f} * P3({c.item():.4f} + {d.item():.4f} x)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
