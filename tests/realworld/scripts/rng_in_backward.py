"""A custom autograd.Function whose backward draws random numbers (a noisy straight-through estimator), followed
by user code that draws from the same global generator and prints what it got."""

from typing import Any

import torch
from realworld_io import save_grads


class NoisySign(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return torch.sign(x)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:
        return grad_out + 0.01 * torch.randn(grad_out.shape)


torch.manual_seed(0)
w = torch.randn(4, requires_grad=True)
loss = (NoisySign.apply(w) * torch.arange(4.0)).sum()
loss.backward()
print("w.grad:", w.grad.tolist() if w.grad is not None else None)
print("next torch.randn(3):", torch.randn(3).tolist())
print("next torch.rand(2):", torch.rand(2).tolist())
save_grads({"w": w.grad})
