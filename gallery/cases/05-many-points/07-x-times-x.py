"""`x * x` at four points with `gradient=torch.ones(len(y))`

The d2l tutorial's non-scalar case: `y = x * x` for x = (0, 1, 2, 3) is a vector, so `backward` needs a seed,
and `torch.ones(len(y))` asks for the derivative at each point, 2x = (0, 2, 4, 6). Unlike `x**2`, the product
uses x twice: MulBackward0 sends x one gradient per factor, v·x each, and x's node adds them up to 2x. The
tutorial's comment "Faster: y.sum().backward()" is the `sum()` trick: the same numbers from a scalar.
"""

import torch

import tracer

x = torch.arange(4.0, requires_grad=True)
y = x * x
tracer.trace(y, gradient=torch.ones(len(y)))  # y.backward(gradient=torch.ones(len(y)))

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"003 In [20]": {"pass": 1, "x": "[0., 2., 4., 6.]"}}
torch.testing.assert_close(x.grad, 2 * x.detach())  # the derivative of x² at each point
with tracer.paused():  # torch's own vᵀJ, and the sum() trick (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: x * x, x.detach(), torch.ones(4))
    summed = torch.autograd.grad((x * x).sum(), x)[0]
torch.testing.assert_close(x.grad, reference)
torch.testing.assert_close(x.grad, summed)
