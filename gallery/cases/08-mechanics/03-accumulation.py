"""Two passes without `zero_()`: gradients accumulate

Backward never overwrites `.grad`, it adds to it. The first pass, with the one-hot seed e₀ on
`z = 2x + 3·x[0, 3]`, leaves (2, 0, 0, 3) in x.grad. The second, with e₁ and no `x.grad.zero_()` in between,
adds its (0, 2, 0, 3): x.grad becomes (2, 2, 0, 6), the sum of two rows of the Jacobian rather than the second
row. The leaf node shows it: `.grad` before (2, 0, 0, 3) → after (2, 2, 0, 6). This is why training loops call
`optimizer.zero_grad()`, and why the Jacobian examples zero x.grad after each pass.
"""

import torch

import tracer

x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], requires_grad=True)
z = 2 * x + 3 * x[0, 3]

tracer.trace(z, gradient=torch.tensor([[1.0, 0, 0, 0]]), retain_graph=True)
first = x.grad.clone()
t = tracer.trace(z, gradient=torch.tensor([[0.0, 1, 0, 0]]))  # no x.grad.zero_() before it

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
assert first.tolist() == [[2.0, 0, 0, 3]]
assert x.grad.tolist() == [[2.0, 2, 0, 6]]  # (2, 0, 0, 3) + (0, 2, 0, 3)
leaf = t.leaves["x"]
assert leaf.grad.values == (0.0, 2.0, 0.0, 3.0)  # what the second pass added
assert leaf.grad_before.values == (2.0, 0.0, 0.0, 3.0) and leaf.grad_total.values == (2.0, 2.0, 0.0, 6.0)
with tracer.paused():  # torch's own (not recorded)
    rows = torch.autograd.functional.jacobian(lambda x: 2 * x + 3 * x[0, 3], x.detach()).reshape(4, 4)
torch.testing.assert_close(x.grad[0], rows[0] + rows[1])
