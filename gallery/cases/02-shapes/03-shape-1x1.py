"""Shape [1, 1]: a matrix of one element

Put the single number into a 1×1 matrix, `x = torch.tensor([[1.]])`, and `y = x.pow(2)` is 1×1 as well. The
default seed follows: torch makes v = `tensor([[1.]])`, the same shape as y, and `x.grad` = [[2.]] is 1×1 like x.
Whatever the shape, one element means one derivative, 2x = 2 at x = 1; only the bookkeeping of shapes changes.
"""

import torch

import tracer

x = torch.tensor([[1.0]], requires_grad=True)
y = x.pow(2)
t = tracer.trace(y)  # y.backward(): one element, so no seed needed

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"004 In [11]": {"pass": 1, "note": "identical: `x**2` there, `x.pow(2)` here; it prints only shapes"}}
seed = t.seeds[0]
assert seed.implicit and seed.shape == (1, 1) and seed.v.values == (1.0,)  # the tutorial's tensor([[1.]])
assert x.grad.shape == (1, 1)
torch.testing.assert_close(x.grad, torch.tensor([[2.0]]))  # 2x at x = 1
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: x.pow(2), x.detach(), torch.ones(1, 1))
torch.testing.assert_close(x.grad, reference)
torch.testing.assert_close(t.leaves["x"].grad.as_tensor(), x.grad)
