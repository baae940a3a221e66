"""One-hot rows where x is used twice

`z = 2x + 3·x[0, 3]` uses x twice: whole, and through its last element. So x's node receives two gradients per
pass and adds them. With the one-hot seed e₀ only z₀ = 2x₀ + 3x₃ counts, giving (2, 0, 0, 3); e₁ gives
(0, 2, 0, 3). With v = ones every element counts: 2 for each from `2x`, plus 3 from each of the four
elements for x₃, so (2, 2, 2, 14), the same as `z.sum(dim=1).backward()`. x.grad is zeroed after each pass.
"""

import torch
from torch.autograd.functional import vjp

import tracer

x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], requires_grad=True)
z = 2 * x + 3 * x[0, 3]

results = []
for v in ([[1.0, 0, 0, 0]], [[0.0, 1, 0, 0]], [[1.0, 1, 1, 1]]):
    tracer.trace(z, gradient=torch.tensor(v), retain_graph=True)
    results.append(x.grad.tolist())
    x.grad.zero_()

assert results == [[[2.0, 0, 0, 3]], [[0.0, 2, 0, 3]], [[2.0, 2, 2, 14]]]  # the tutorial's rows
with tracer.paused():  # torch's own vᵀJ (a check, not recorded)
    _, reference = vjp(lambda x: 2 * x + 3 * x[0, 3], x.detach(), torch.ones(1, 4))
assert reference.tolist() == results[2]
