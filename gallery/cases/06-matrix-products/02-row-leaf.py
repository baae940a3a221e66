"""Row times column: the gradient of the row

The same product with the roles swapped: now the row a = [[1, 2]] requires grad and the column x = [[3], [5]]
is a constant. ∂(a₁x₁ + a₂x₂)/∂a is x's entries arranged like a, the row [[3, 5]] = xᵀ. In general
MmBackward turns the v it receives into v·xᵀ for the left factor and aᵀ·v for the right one; with v = [[1.]]
those are just the transposes.
"""

import torch

import tracer

a = torch.tensor([[1.0, 2.0]], requires_grad=True)
x = torch.tensor([[3.0], [5.0]])
y = torch.mm(a, x)

t = tracer.trace(y)  # y.backward()

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
assert tuple(y.shape) == (1, 1) and y.item() == 13.0
torch.testing.assert_close(a.grad, x.T)  # [[3., 5.]]
assert a.grad.tolist() == [[3.0, 5.0]]

with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda a: torch.mm(a, x), a.detach(), torch.ones(1, 1))
torch.testing.assert_close(a.grad, reference)
assert t.leaves["a"].grad.values == (3.0, 5.0)
