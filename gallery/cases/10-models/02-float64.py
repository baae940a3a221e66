"""float64 all the way down

`torch.arange(6, dtype=float)` makes a float64 x, and every tensor backward produces for it is float64 too: the
seed, each v and vᵀJ, and x.grad (the dtype is in every tooltip and in each leaf's label). The tutorial passes
`v = torch.ones_like(y)`, a 0-d float64 1.0, the same as the default seed. y = Σxᵢ² has the gradient 2x. float64
matters when you compare gradients with finite differences or closed forms at tight tolerances: float32 keeps
about 7 significant digits, float64 about 16.
"""

import torch

import tracer

x = torch.arange(6, dtype=float).view(3, 2).requires_grad_(True)
y = (x**2).sum()
v = torch.ones_like(y)  # 0-d and float64, like y
t = tracer.trace(y, gradient=v)  # y.backward(v)

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"004 In [16]": {"pass": 1, "x": "[[ 0., 2.], [ 4., 6.], [ 8., 10.]]"}}
assert x.grad.dtype == torch.float64 and t.seeds[0].dtype == "float64"
assert all(v.dtype == "float64" for step in t.steps for v in step.v if v is not None)
torch.testing.assert_close(x.grad, 2 * x.detach(), rtol=0, atol=0)  # exact: [[0, 2], [4, 6], [8, 10]]
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: (x**2).sum(), x.detach(), v)
torch.testing.assert_close(x.grad, reference, rtol=0, atol=0)
