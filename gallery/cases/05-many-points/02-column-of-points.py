"""Many points in a column

The same five points as a column, `x.view(-1, 1)` of shape [5, 1], give an output of shape [5, 1], so the seed
`torch.ones_like(y)` is a column of ones too. The shape of v always follows the output; the numbers do not
change: the derivative 2x at each point, now arranged as a column like x.
"""

import torch

import tracer

x = torch.linspace(-2, 2, 5).view(-1, 1).requires_grad_(True)
y = x**2
v = torch.ones_like(y)

t = tracer.trace(y, gradient=v)  # y.backward(v)

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"004 In [13] (2nd)": {"pass": 1, "note": "it prints the seed, a column of five ones"}}
assert t.seeds[0].shape == (5, 1) and x.grad.shape == (5, 1)
torch.testing.assert_close(x.grad, 2 * x.detach())  # 2x at each point
assert x.grad.flatten().tolist() == [-4.0, -2.0, 0.0, 2.0, 4.0]

with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: x**2, x.detach(), v)
torch.testing.assert_close(x.grad, reference)
