"""Vector in, vector out: the seed weights each element

`y = 3.14 * x` acts on each element alone, so its Jacobian is diagonal, 3.14 times the identity. vᵀJ then
multiplies each weight of v by 3.14: with v = (1, 1) the result is (3.14, 3.14), with v = (10, 100) it is
(31.4, 314). A non-uniform v is how a later computation tells this one how much each output matters.
"""

import torch
from torch.autograd.functional import vjp

import tracer

x = torch.tensor([1.0, 2.0], requires_grad=True)
y = 3.14 * x
v = torch.tensor([10.0, 100.0])

t = tracer.trace(y, gradient=v)

torch.testing.assert_close(x.grad, torch.tensor([31.4, 314.0]))  # the tutorial's numbers
torch.testing.assert_close(x.grad, 3.14 * v)  # v times the diagonal of J
step = t.steps[0]
assert step.name == "MulBackward0" and step.v[0].values == (10.0, 100.0)  # v arrives unchanged
with tracer.paused():  # torch's own vᵀJ (a check, not recorded)
    _, reference = vjp(lambda x: 3.14 * x, x.detach(), v)
torch.testing.assert_close(x.grad, reference)
