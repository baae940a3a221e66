"""Row times column: the gradient of the column

`y = torch.mm(a, x)` multiplies the row a = [[1, 2]] by the column x = [[3], [5]]: a [1, 1] output,
y = 1·3 + 2·5 = 13. Only x requires grad. y = a₁x₁ + a₂x₂, so ∂y/∂x is a's entries arranged like x: the column
[[1], [2]] = aᵀ. One element means the default seed works, and torch makes it [[1.]], shape [1, 1] like y. The
MmBackward node sends nothing towards a, which needs no gradient.
"""

import torch

import tracer

a = torch.tensor([[1.0, 2.0]])
x = torch.tensor([[3.0], [5.0]], requires_grad=True)
y = torch.mm(a, x)

t = tracer.trace(y)  # y.backward()

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"001 In [219]": {"pass": 1, "x": "[[1.], [2.]]"}}
assert y.item() == 13.0 and t.seeds[0].shape == (1, 1)
torch.testing.assert_close(x.grad, a.T)  # the tutorial's [[1.], [2.]]
assert x.grad.tolist() == [[1.0], [2.0]]

with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: torch.mm(a, x), x.detach(), torch.ones(1, 1))
torch.testing.assert_close(x.grad, reference)
