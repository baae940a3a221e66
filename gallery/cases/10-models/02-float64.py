"""float64 all the way down

`torch.arange(6, dtype=float)` makes a float64 x, and every tensor backward produces for it is float64 too: the
seed torch makes, each v and vᵀJ, and x.grad (the dtype is in every tooltip and in each leaf's label).
y = Σxᵢ² has the gradient 2x. float64 matters when you compare gradients with finite differences or
closed forms at tight tolerances: float32 keeps about 7 significant digits, float64 about 16.
"""

import torch
from torch.autograd.functional import vjp

import tracer

x = torch.arange(6, dtype=float).view(3, 2).requires_grad_(True)
y = (x**2).sum()

t = tracer.trace(y)

assert x.grad.dtype == torch.float64 and t.seeds[0].dtype == "float64"
assert all(v.dtype == "float64" for step in t.steps for v in step.v if v is not None)
torch.testing.assert_close(x.grad, 2 * x.detach(), rtol=0, atol=0)  # exact: [[0, 2], [4, 6], [8, 10]]

with tracer.paused():  # torch's own (a check, not recorded)
    _, reference = vjp(lambda x: (x**2).sum(), x.detach(), torch.tensor(1.0, dtype=torch.float64))
torch.testing.assert_close(x.grad, reference, rtol=0, atol=0)
