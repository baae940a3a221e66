"""Gradients of two functions at three points

Three points in four dimensions, one per row of x ([3, 4]), and two functions of each point: f₁ = Σxᵢ and
f₂ = Σxᵢ². `y = torch.stack([x.sum(1), (x**2).sum(1)])` is [2, 3], a row per function and a column per point.
With ones in row 0 of v and zeros elsewhere, vᵀJ stacks ∇f₁ at every point (all ones); with ones in row 1 it
stacks ∇f₂ = 2x. Points do not mix, because each column of y depends on one row of x only.
"""

import torch

import tracer

x = torch.arange(4 * 3, dtype=torch.float64).view(-1, 4).requires_grad_(True)
y = torch.stack([x.sum(1), (x**2).sum(1)])

v1 = torch.zeros_like(y)
v1[0] = 1.0
tracer.trace(y, gradient=v1, retain_graph=True)
grad_f1 = x.grad.clone()
x.grad.zero_()
v2 = torch.zeros_like(y)
v2[1] = 1.0
tracer.trace(y, gradient=v2)

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "004 In [18]": {
        "pass": [1, 2],
        "x": "[[1., 1., 1., 1.], [1., 1., 1., 1.], [1., 1., 1., 1.]] then "
        "[[ 0., 2., 4., 6.], [ 8., 10., 12., 14.], [16., 18., 20., 22.]]",
    }
}
assert grad_f1.eq(1.0).all()  # ∇f₁ = (1, 1, 1, 1) at every point
torch.testing.assert_close(x.grad, 2 * x.detach())  # ∇f₂ = 2x: [[0, 2, 4, 6], [8, ...], [16, ..., 22]]
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: torch.stack([x.sum(1), (x**2).sum(1)]), x.detach(), v2)
torch.testing.assert_close(x.grad, reference)
