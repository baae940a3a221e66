"""`x.pow(2)` at x = 2

The Python 2 tutorial's first cell: x = [2.] is a vector of one element, `y = x.pow(2)` = [4.] is one too, and
`y.backward()` with no seed works because y has a single element (torch makes v = [1.]). PowBackward0 multiplies
that v by its local derivative 2x = 4, so `x.grad` = [4.]: here the gradient happens to equal y, because
2x = x² exactly at x = 2. Change x and the two part ways; the picture keeps them apart, y as the forward value
and 4 as the vᵀJ that arrives at x.
"""

import torch

import tracer

x = torch.tensor([2.0], requires_grad=True)
y = x.pow(2)
t = tracer.trace(y)  # y.backward()

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"002 In [1]": {"pass": 1, "x": "4"}}
assert t.seeds[0].implicit and t.seeds[0].shape == (1,)
assert y.tolist() == [4.0] and x.grad.tolist() == [4.0]  # the tutorial's y and x.grad
torch.testing.assert_close(x.grad, 2 * x.detach())  # d(x²)/dx = 2x
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: x.pow(2), x.detach(), torch.ones(1))
torch.testing.assert_close(x.grad, reference)
