"""A matrix-valued function of a scalar

f(x) = [[1, x], [x², x³], [x⁴, x⁵]] is a 3×2 matrix of functions of one number. Its derivative is the matrix of
the six derivatives, [[0, 1], [2x, 3x²], [4x³, 5x⁴]], which at x = 1 is [[0, 1], [2, 3], [4, 5]]. Each pass takes
a one-hot seed of y's shape, a single 1 at position (i, j), and returns that one entry's derivative: six passes
over one graph kept with `retain_graph=True`. Note how x**0 = 1 sends zero: a constant does not change with x.
"""

import itertools

import torch

import tracer

x = torch.tensor(1.0, requires_grad=True)
y = torch.stack([x**i for i in range(6)]).view(3, 2)

derivatives = torch.zeros_like(y)
for i, j in itertools.product(range(3), range(2)):
    v = torch.zeros_like(y)
    v[i, j] = 1.0
    tracer.trace(y, gradient=v, retain_graph=True)
    derivatives[i, j] = x.grad.item()
    x.grad.zero_()

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"004 In [19]": {"pass": [1, 2, 3, 4, 5, 6], "x": "0. 1. 2. 3. 4. 5."}}
assert derivatives.tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]  # the tutorial's derivatives
with tracer.paused():  # torch's own (a check, not recorded)
    reference = torch.autograd.functional.jacobian(
        lambda x: torch.stack([x**i for i in range(6)]).view(3, 2), x.detach()
    )
torch.testing.assert_close(derivatives, reference)
