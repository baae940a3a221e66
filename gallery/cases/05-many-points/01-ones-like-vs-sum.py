"""Many points at once: `ones_like` and the `sum()` trick

To get the derivative of f(x) = x² at five points, put the points in one tensor. `y = x**2` is then five
independent functions, and its Jacobian is diagonal with f'(xᵢ) = 2xᵢ on the diagonal, so v = `ones_like(y)`
reads the diagonal off: vᵀJ = (-4, -2, 0, 2, 4). The `sum()` trick reaches the same numbers by another route: it
adds the five values first and differentiates the scalar Σxᵢ², whose gradient is also 2x. Compare the two
pictures: the first starts from a seed of five ones, the second from a seed of 1 and a SumBackward node that
copies it to the five elements.
"""

import torch

import tracer

x = torch.linspace(-2, 2, 5, requires_grad=True)

y = x**2
tracer.trace(y, gradient=torch.ones_like(y))  # differentiate, then add up: y.backward(torch.ones_like(y))
with_ones = x.grad.clone()

x.grad = None
y_sum = (x**2).sum()
tracer.trace(y_sum)  # add up, then differentiate: (x**2).sum().backward()
with_sum = x.grad.clone()

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "004 In [13] (1st)": {"pass": 1, "x": "[-4., -2., 0., 2., 4.]"},
    "004 In [2]": {"pass": 1, "x": "[-4., -2., 0., 2., 4.]", "note": "identical to 004 In [13] (1st)"},
    "004 In [44]": {"pass": 2, "x": "[-4., -2., 0., 2., 4.]"},
}
assert with_ones.tolist() == with_sum.tolist() == [-4.0, -2.0, 0.0, 2.0, 4.0]  # 2x at each point
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: x**2, x.detach(), torch.ones(5))
torch.testing.assert_close(with_ones, reference)
