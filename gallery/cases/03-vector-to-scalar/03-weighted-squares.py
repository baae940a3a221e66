"""Weighted squares: `3x₁² + 5x₂²`

`y = (x * x * w).sum()` with constant weights w = (3, 5) is the scalar 3x₁² + 5x₂², whose gradient is
(6x₁, 10x₂) = (-6, 20) at (-1, 2). x is used twice in `x * x`, so the multiplication sends x two gradients, one
per factor (each w·x), and they add up to 2wx. The weights need no gradient: their edge is drawn dashed.
"""

import torch

import tracer

x = torch.tensor([-1.0, 2.0], requires_grad=True)
w = torch.tensor([3.0, 5.0])
y = (x * x * w).sum()
t = tracer.trace(y)  # y.backward()

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "004 In [3]": {"pass": 1, "x": "[-6., 20.]"},
    "004 In [15]": {"pass": 1, "note": "identical to 004 In [3]; it prints the seed, 1.0"},
}
torch.testing.assert_close(x.grad, 2 * w * x.detach())  # the closed form (6x₁, 10x₂)
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: (x * x * w).sum(), x.detach(), torch.tensor(1.0))
torch.testing.assert_close(x.grad, reference)
assert t.leaves["x"].grad.values == (-6.0, 20.0)
