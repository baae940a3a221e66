"""A seed of 100: the gradient scales with v

The seed is not a switch but a weight. With v = 100 backward computes vᵀJ = 100 · 6x, so `x.grad` is 100 times
the derivative, 600 · 0.7586 ≈ 455.2. Every node passes the factor along unchanged (follow the 100 down the
picture), because each step only multiplies the incoming v by a local Jacobian: backward is linear in v.
"""

import torch
from torch.autograd.functional import vjp

import tracer

x = torch.tensor([0.7586], requires_grad=True)
y = 3 * x**2
v = 100 * torch.ones(1)

t = tracer.trace(y, gradient=v)

torch.testing.assert_close(x.grad, 100 * 6 * x.detach())  # v times the derivative
assert abs(x.grad.item() - 455.16) < 0.05  # the tutorial printed 455.1819 for its x

with tracer.paused():  # torch's own vᵀJ (a check, not recorded)
    _, reference = vjp(lambda x: 3 * x**2, x.detach(), v)
torch.testing.assert_close(x.grad, reference)
torch.testing.assert_close(t.leaves["x"].grad.as_tensor(), x.grad)
