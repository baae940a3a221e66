"""`torch.dot(x, x)`: the squared length, then `x.sum()` after `zero_()`

`y = 2 * torch.dot(x, x)` is 2‖x‖², a scalar whose gradient is 4x. The DotBackward node receives v = 2 from the
multiplication and, because both of its inputs are x, sends x two gradients, v·x each, which add up to 2·2x.
With x = (0, 1, 2, 3) the result is (0, 4, 8, 12), as in the d2l tutorial. It then resets the gradient with
`x.grad.zero_()` and differentiates `x.sum()`, whose gradient is all ones (second picture): without the reset,
backward would add the ones to (0, 4, 8, 12).
"""

import torch

import tracer

x = torch.arange(4.0, requires_grad=True)
y = 2 * torch.dot(x, x)
t = tracer.trace(y)  # y.backward(): x.grad = 4x
first = x.grad.clone()

x.grad.zero_()  # reset the gradient
y = x.sum()
tracer.trace(y)  # y.backward(): x.grad = ones

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"003 In [6]": {"pass": 1, "x": "[ 0., 4., 8., 12.]"}, "003 In [11]": {"pass": 2, "x": "[1., 1., 1., 1.]"}}
torch.testing.assert_close(first, 4 * x.detach())  # the tutorial's check: x.grad == 4 * x
assert x.grad.tolist() == [1.0, 1.0, 1.0, 1.0]
dot = next(s for s in t.steps if s.name == "DotBackward0")
assert dot.v[0].values == (2.0,)  # the 2 of `2 *` arrives as v
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: 2 * torch.dot(x, x), x.detach(), torch.tensor(1.0))
torch.testing.assert_close(first, reference)
