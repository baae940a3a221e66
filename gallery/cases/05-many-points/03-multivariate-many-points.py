"""A function of two variables at three points

f(x₁, x₂) = -x₁² + x₂² at the three points (0, 1), (2, 3), (4, 5), one per row of x. `(x * x * w).sum(1)` with
w = (-1, 1) evaluates f on every row, so y holds three values. Each value depends on its own row only, so
v = ones adds nothing across points: row i of x.grad is ∇f at point i, (-2x₁, 2x₂). x is float64, and so are
every gradient and the seed.
"""

import torch

import tracer

x = torch.arange(6, dtype=torch.float64).view(3, 2).requires_grad_(True)
w = torch.tensor([-1.0, 1.0], dtype=torch.float64)
y = (x * x * w).sum(1)

t = tracer.trace(y, gradient=torch.ones_like(y))  # y.backward(torch.ones_like(y))

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"004 In [4]": {"pass": 1, "x": "[[-0., 2.], [-4., 6.], [-8., 10.]]"}}
expected = torch.tensor([[0.0, 2.0], [-4.0, 6.0], [-8.0, 10.0]], dtype=torch.float64)  # the tutorial's x.grad
torch.testing.assert_close(x.grad, expected)
torch.testing.assert_close(x.grad, 2 * w * x.detach())  # (-2x₁, 2x₂) per row
assert t.leaves["x"].dtype == "float64" and t.seeds[0].dtype == "float64"

with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(
        lambda x: (x * x * w).sum(1), x.detach(), torch.ones(3, dtype=torch.float64)
    )
torch.testing.assert_close(x.grad, reference)
