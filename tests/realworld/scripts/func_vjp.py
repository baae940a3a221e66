"""torch.func.vjp: the pullback of a small network's forward, applied to two cotangents."""

import torch
from realworld_io import save_grads
from torch.func import vjp

torch.manual_seed(0)
weight = torch.randn(5, 3)


def forward(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x @ weight.T).exp()


x = torch.randn(2, 3)
out, pullback = vjp(forward, x)
print("out sum:", round(out.sum().item(), 6))
(ct1,) = pullback(torch.ones_like(out))
(ct2,) = pullback(torch.arange(10.0).view(2, 5))
print("vjp(ones):", [round(v, 5) for v in ct1.flatten().tolist()])
print("vjp(arange):", [round(v, 5) for v in ct2.flatten().tolist()])

(s_out, s_pull) = vjp(torch.sin, torch.linspace(0, 1, 3))
print("vjp(sin):", [round(v, 6) for v in s_pull(torch.ones(3))[0].tolist()])

# ordinary autograd afterwards
xr = x.clone().requires_grad_()
forward(xr).backward(torch.ones(2, 5))
assert xr.grad is not None
print("backward agrees:", torch.equal(xr.grad, ct1))
save_grads({"x": xr.grad, "func.vjp_ones": ct1, "func.vjp_arange": ct2})
