"""Writing v = 1 yourself

Passing `gradient=torch.ones(1)` spells out the seed torch would have made: the picture is the same as with the
default, except that the seed node now shows the v you gave. The result is still vᵀJ = 1 · 6x. Writing the seed
out is what every later example does, because outputs with more than one element have no default.
"""

import torch
from torch.autograd.functional import vjp

import tracer

x = torch.tensor([0.8535], requires_grad=True)
y = 3 * x**2
v = torch.ones(1)

t = tracer.trace(y, gradient=v)  # y.backward(gradient=v), recorded

assert t.seeds[0].implicit is False and t.seeds[0].v.values == (1.0,)
torch.testing.assert_close(x.grad, 6 * x.detach())  # same as the default seed: 6x
assert abs(x.grad.item() - 5.1208) < 1e-3  # the tutorial's number

with tracer.paused():  # torch's own vᵀJ (a check, not recorded)
    _, reference = vjp(lambda x: 3 * x**2, x.detach(), v)
torch.testing.assert_close(x.grad, reference)
