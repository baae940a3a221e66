"""`torch.dot(x, x)`: the squared length

`y = 2 * torch.dot(x, x)` is 2‖x‖², a scalar whose gradient is 4x. The DotBackward node receives v = 2 from the
multiplication and, because both of its inputs are x, sends x two gradients, v·x each, which add up to 2·2x.
With x = (0, 1, 2, 3) the result is (0, 4, 8, 12), as in the d2l tutorial.
"""

import torch
from torch.autograd.functional import vjp

import tracer

x = torch.arange(4.0, requires_grad=True)
y = 2 * torch.dot(x, x)

t = tracer.trace(y)

torch.testing.assert_close(x.grad, 4 * x.detach())  # the tutorial's check: x.grad == 4 * x
assert x.grad.tolist() == [0.0, 4.0, 8.0, 12.0]
dot = next(s for s in t.steps if s.name == "DotBackward0")
assert dot.v[0].values == (2.0,)  # the 2 of `2 *` arrives as v

with tracer.paused():  # torch's own vᵀJ (a check, not recorded)
    _, reference = vjp(lambda x: 2 * torch.dot(x, x), x.detach(), torch.tensor(1.0))
torch.testing.assert_close(x.grad, reference)
