"""Two elements, two paths: `x[0]³ + 2·x[1]²`

x is a column of two numbers and y = x₀³ + 2x₁² is one number (shape [1]). Its gradient is the row
[3x₀², 4x₁]. In the graph, each indexing `x[0]` and `x[1]` is its own node: one sends 3x₀² into the first slot
of x, the other 4x₁ into the second, and x's node adds the two (a zero where each has nothing to say). The seed
is the default v = 1, so the result is the gradient itself.
"""

import torch
from torch.autograd.functional import vjp

import tracer

x = torch.tensor([[0.9647], [0.8132]], requires_grad=True)
y = x[0] ** 3 + 2 * x[1] ** 2

t = tracer.trace(y)  # y.backward()

expected = torch.stack([3 * x[0] ** 2, 4 * x[1]]).detach()  # the tutorial's 3*x[0]**2, 4*x[1]
torch.testing.assert_close(x.grad, expected)
torch.testing.assert_close(x.grad, torch.tensor([[2.7920], [3.2528]]), atol=1e-3, rtol=0)  # its printed numbers

with tracer.paused():  # torch's own vᵀJ (a check, not recorded)
    _, reference = vjp(lambda x: x[0] ** 3 + 2 * x[1] ** 2, x.detach(), torch.ones(1))
torch.testing.assert_close(x.grad, reference)
assert sum(s.name == "SelectBackward0" for s in t.steps) == 2  # one node per x[i]
