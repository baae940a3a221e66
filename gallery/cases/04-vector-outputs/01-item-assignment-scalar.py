"""Scalar in, vector out, by item assignment

`y = torch.zeros(2, 1)` is filled in place: `y[0] = x³`, `y[1] = 2x²`. Each assignment becomes a CopySlices
node, which sends the slot's share of v to the computation that filled it and the rest to what was there before
(the zeros, which need no gradient). With v = ones, backward adds the derivatives of both elements:
3x² + 4x ≈ 6.034 at x = 0.9004, the tutorial's "why?". The Jacobian is the column [3x², 4x]; v = ones sums it.
"""

import torch
from torch.autograd.functional import vjp

import tracer


def f(x):
    y = torch.zeros(2, 1)
    y[0] = x**3
    y[1] = 2 * x**2
    return y


x = torch.tensor([0.9004], requires_grad=True)
y = f(x)
t = tracer.trace(y, gradient=torch.ones(y.size()))

torch.testing.assert_close(x.grad, 3 * x.detach() ** 2 + 4 * x.detach())  # the tutorial's 3*x**2 + 4*x
assert abs(x.grad.item() - 6.0341) < 1e-3
assert sum(s.name == "CopySlices" for s in t.steps) == 2  # one per assignment
with tracer.paused():  # torch's own vᵀJ (a check, not recorded)
    _, reference = vjp(f, x.detach(), torch.ones(2, 1))
torch.testing.assert_close(x.grad, reference)
