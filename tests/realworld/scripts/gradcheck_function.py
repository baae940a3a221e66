"""A custom autograd.Function (a smooth clipped cube) checked with gradcheck and gradgradcheck in float64,
then used in an ordinary model."""

from typing import Any

import torch
from realworld_io import save_grads
from torch.autograd import gradcheck, gradgradcheck


class SoftCube(torch.autograd.Function):
    """y = x**3 / (1 + x**2); written with differentiable ops in backward so double backward works."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x**3 / (1 + x**2)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        x2 = x * x
        return grad_out * (x2 * (x2 + 3)) / (1 + x2) ** 2


torch.manual_seed(0)
inp = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
print("gradcheck:", gradcheck(SoftCube.apply, (inp,), eps=1e-6, atol=1e-5))
print("gradgradcheck:", gradgradcheck(SoftCube.apply, (inp,), eps=1e-6, atol=1e-5))

weight = torch.randn(4, 3, requires_grad=True)
x = torch.randn(5, 4)
loss = SoftCube.apply(x @ weight).pow(2).mean()
loss.backward()
assert weight.grad is not None
print(f"loss {loss.item():.6f}, weight grad norm {weight.grad.norm().item():.6f}")
save_grads({"weight": weight.grad, "inp": inp.grad})
