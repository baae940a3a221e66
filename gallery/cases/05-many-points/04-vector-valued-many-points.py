"""Two functions at three points: one row of v per function

`y = torch.stack([-x**3, 5 * x])` evaluates f₁(x) = -x³ and f₂(x) = 5x at the points x = 0, 1, 2, giving a [2, 3]
output: a row per function, a column per point. v = ones would add f₁' and f₂' together. Instead v has the
output's shape with ones in one row only: ones in row 0 give f₁'(x) = -3x² at every point, (0, -3, -12), and
ones in row 1 give f₂'(x) = 5 everywhere.
"""

import torch

import tracer

x = torch.arange(3, dtype=torch.float64, requires_grad=True)
y = torch.stack([-(x**3), 5 * x])

v1 = torch.zeros_like(y)
v1[0] = 1.0  # select f₁ at every point
tracer.trace(y, gradient=v1, retain_graph=True)
d_f1 = x.grad.clone()
x.grad.zero_()
v2 = torch.zeros_like(y)
v2[1] = 1.0  # select f₂
tracer.trace(y, gradient=v2)

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"004 In [6]": {"pass": [1, 2], "x": "[ 0., -3., -12.] then [5., 5., 5.]"}}
assert d_f1.tolist() == [0.0, -3.0, -12.0] and x.grad.tolist() == [5.0, 5.0, 5.0]  # the tutorial's numbers
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: torch.stack([-(x**3), 5 * x]), x.detach(), v1)
torch.testing.assert_close(d_f1, reference)
