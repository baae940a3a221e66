"""Vector in, vector out, by item assignment: the gradients add up

`y[0] = x₀²`, `y[1] = x₁³`, `y[2] = x₁⁴` fill a [3, 1] output from two inputs. x₁ feeds two outputs, so its
gradient is the sum of both contributions, 3x₁² + 4x₁³: the tutorial's "cumulative grad". The seed v = 100·ones
weights every output by 100, so x.grad = 100 · (2x₀, 3x₁² + 4x₁³) ≈ (44.68, 36.49). In the picture, follow
the two paths from y[1] and y[2] meeting at x.
"""

import torch
from torch.autograd.functional import vjp

import tracer


def f(x):
    y = torch.zeros(3, 1)
    y[0] = x[0] ** 2
    y[1] = x[1] ** 3
    y[2] = x[1] ** 4
    return y


x = torch.tensor([[0.2234], [0.2954]], requires_grad=True)
y = f(x)
v = 100 * torch.ones(y.size())
t = tracer.trace(y, gradient=v)

x0, x1 = x.detach()
torch.testing.assert_close(x.grad, 100 * torch.stack([2 * x0, 3 * x1**2 + 4 * x1**3]))
torch.testing.assert_close(x.grad, torch.tensor([[44.68], [36.49]]), atol=0.01, rtol=0)
with tracer.paused():  # torch's own vᵀJ (a check, not recorded)
    _, reference = vjp(f, x.detach(), v)
torch.testing.assert_close(x.grad, reference)
