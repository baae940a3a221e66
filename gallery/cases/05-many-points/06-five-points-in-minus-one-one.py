"""Five points in [-1, 1], and the seed they need

The theory tutorial's "examples revisited" evaluates x² at the five points `torch.linspace(-1, 1, 5)`, that is
-1, -0.5, 0, 0.5, 1, and prints the `gradient` argument it passes: `tensor([1., 1., 1., 1., 1.])`, one weight per
point, shaped like y. y = x² is five independent functions, so J is diagonal with 2xᵢ on the diagonal and
vᵀJ = ones · J = (-2, -1, 0, 1, 2), the derivative at each point. Halving the interval halves every derivative
compared with the points in [-2, 2] above.
"""

import torch

import tracer

x = torch.linspace(-1, 1, 5, requires_grad=True)
y = x**2
v = torch.ones_like(y)  # one weight per point
t = tracer.trace(y, gradient=v)  # y.backward(v)

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"004 In [12]": {"pass": 1, "note": "it prints the seed, tensor([1., 1., 1., 1., 1.])"}}
assert t.seeds[0].shape == (5,) and t.seeds[0].v.values == (1.0,) * 5  # the tutorial's gradient argument
assert x.grad.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]  # 2x at each point
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: x**2, x.detach(), v)
torch.testing.assert_close(x.grad, reference)
