"""Shape [1, 1]: a matrix of one element

Put the single number into a 1×1 matrix, `x = torch.tensor([[1.]])`, and `y = x.pow(2)` is 1×1 as well. The
default seed follows: torch makes v = `tensor([[1.]])`, the same shape as y, and `x.grad` = [[2.]] is 1×1 like x.
Whatever the shape, one element means one derivative, 2x = 2 at x = 1; only the bookkeeping of shapes changes.
"""

import torch
from torch.autograd.functional import vjp

import tracer

x = torch.tensor([[1.0]], requires_grad=True)
y = x.pow(2)

t = tracer.trace(y)  # y.backward(): one element, so no seed needed

seed = t.seeds[0]
assert seed.implicit and seed.shape == (1, 1) and seed.v.values == (1.0,)
assert x.grad.shape == (1, 1)
torch.testing.assert_close(x.grad, torch.tensor([[2.0]]))  # 2x at x = 1

with tracer.paused():  # torch's own vᵀJ (a check, not recorded)
    _, reference = vjp(lambda x: x.pow(2), x.detach(), torch.ones(1, 1))
torch.testing.assert_close(x.grad, reference)
torch.testing.assert_close(t.leaves["x"].grad.as_tensor(), x.grad)
