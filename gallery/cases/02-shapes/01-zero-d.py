"""A 0-d tensor: the true scalar

`x = torch.tensor(1.)` has shape `()`, and so does `y = 2x + x²`. The default seed is then the 0-d tensor
`tensor(1.)`, and `x.grad` is 0-d as well: dy/dx = 2 + 2x = 4 at x = 1. In the picture, y's graph splits into
two branches (the `2x` and the `x²`), and x's node adds their two contributions, 2 and 2x = 2.
"""

import torch

import tracer

x = torch.tensor(1.0, requires_grad=True)
y = 2 * x + x**2
t = tracer.trace(y)  # y.backward()

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"001 In [151]": {"pass": 1, "x": "4.0"}}
assert t.seeds[0].shape == () and t.seeds[0].v.values == (1.0,)  # v = tensor(1.), 0-d like y
assert x.grad.shape == ()  # .grad has the shape of x
torch.testing.assert_close(x.grad, 2 + 2 * x.detach())  # the tutorial's "manual result": 4
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: 2 * x + x**2, x.detach(), torch.tensor(1.0))
torch.testing.assert_close(x.grad, reference)
