"""The sum of a vector

`y = x.sum()` adds the two elements of x into a 0-d scalar. Its Jacobian is the row [1, 1] (each element counts
once), so with the seed v = 100 backward returns vᵀJ = [100, 100], whatever the values of x. The seed is 0-d
because y is: `tensor(100.)`, not `tensor([100.])`.
"""

import torch
from torch.autograd.functional import vjp

import tracer

x = torch.tensor([1.0, 2.0], requires_grad=True)
y = x.sum()
v = torch.tensor(100.0)  # 0-d, like y

t = tracer.trace(y, gradient=v)

assert t.seeds[0].shape == ()
torch.testing.assert_close(x.grad, torch.tensor([100.0, 100.0]))  # the tutorial's [1*gradient, 1*gradient]
step = t.steps[0]  # SumBackward0: v = 100 arrives and is copied to every element
assert step.name == "SumBackward0" and step.vjp[0].values == (100.0, 100.0)

with tracer.paused():  # torch's own vᵀJ (a check, not recorded)
    _, reference = vjp(lambda x: x.sum(), x.detach(), v)
torch.testing.assert_close(x.grad, reference)
