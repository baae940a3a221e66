"""Double backward: a WGAN-GP style gradient penalty (grad of the output with create_graph=True, then backward
through it) and a Hessian-vector product."""

import torch
from realworld_io import module_grads, save_grads
from torch import nn

torch.manual_seed(0)
critic = nn.Sequential(nn.Linear(4, 16), nn.Softplus(), nn.Linear(16, 1))
real = torch.randn(6, 4)
fake = torch.randn(6, 4)

alpha = torch.rand(6, 1)
mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
(grad_mixed,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
penalty = ((grad_mixed.norm(2, dim=1) - 1) ** 2).mean()
loss = critic(fake).mean() - critic(real).mean() + 10 * penalty
loss.backward()
print(f"penalty {penalty.item():.6f}, loss {loss.item():.6f}")
print("mixed.grad set by the penalty's backward:", mixed.grad is not None)

# Hessian-vector product of a scalar function
w = torch.randn(5, requires_grad=True)
f = (w.sin() * w.pow(2)).sum()
(g,) = torch.autograd.grad(f, w, create_graph=True)
v = torch.ones(5)
(hvp,) = torch.autograd.grad(g, w, grad_outputs=v)
print("hvp:", [round(t, 6) for t in hvp.tolist()])

# backward(create_graph=True) leaves a differentiable .grad
z = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
(z**3).sum().backward(create_graph=True)
assert z.grad is not None
print("z.grad requires grad:", z.grad.requires_grad)
second = torch.autograd.grad(z.grad.sum(), z)[0]
print("second derivative:", second.tolist())
save_grads({**module_grads(critic), "mixed": mixed.grad, "w": w.grad, "z": z.grad.detach(), "hvp": hvp})
