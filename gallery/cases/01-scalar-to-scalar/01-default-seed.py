"""The seed you do not write

`y = 3x²` has a single element, so `y.backward()` needs no `gradient`: torch makes the seed v = 1 by itself
(the seed node says `gradient=None`). The Jacobian of a one-element function is the 1×1 matrix [dy/dx] = [6x],
and vᵀJ = 1 · 6x, so `x.grad` is the ordinary derivative: 6 · 0.7073 ≈ 4.244. As in the oldest tutorial, x is a
one-element vector (shape [1]); the seed torch makes has that shape too.
"""

import torch
from torch.autograd.functional import vjp

import tracer

x = torch.tensor([0.7073], requires_grad=True)
y = 3 * x**2

t = tracer.trace(y)  # does what y.backward() does, and records it

seed = t.seeds[0]
assert seed.implicit and seed.v.values == (1.0,)  # torch chose v = 1
torch.testing.assert_close(x.grad, 6 * x.detach())  # the closed form d(3x²)/dx = 6x
assert abs(x.grad.item() - 4.244) < 1e-3  # the tutorial's number

with tracer.paused():  # torch's own vᵀJ (a check, not recorded)
    _, reference = vjp(lambda x: 3 * x**2, x.detach(), torch.ones(1))
torch.testing.assert_close(x.grad, reference)
torch.testing.assert_close(t.leaves["x"].grad.as_tensor(), x.grad)  # what gradtrace recorded
