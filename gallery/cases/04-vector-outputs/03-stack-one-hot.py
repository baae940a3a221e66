"""Scalar in, vector out with `torch.stack`: one derivative per pass

`y = torch.stack([-x³, 5x])` holds two functions of one x. Its Jacobian is the column (f₁'(x), f₂'(x)) =
(-3x², 5), and backward with v gives v₁f₁' + v₂f₂'. To read each derivative alone, pick it with a one-hot seed:
v = (1, 0) gives f₁'(1) = -3, v = (0, 1) gives f₂'(1) = 5. The first pass keeps the graph (`retain_graph=True`)
for the second, and x.grad is zeroed in between, or the second result would be added to the first.
"""

import torch

import tracer

x = torch.tensor(1.0, requires_grad=True)
y = torch.stack([-(x**3), 5 * x])

tracer.trace(y, gradient=torch.tensor([1.0, 0.0]), retain_graph=True)
first = x.grad.clone()
x.grad.zero_()
tracer.trace(y, gradient=torch.tensor([0.0, 1.0]))
second = x.grad.clone()

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"004 In [5]": {"pass": [1, 2], "x": "-3.0 then 5.0"}}
assert (first.item(), second.item()) == (-3.0, 5.0)  # f₁'(1) = -3x², f₂'(1) = 5
with tracer.paused():  # torch's own Jacobian column (not recorded)
    reference = torch.autograd.functional.jacobian(lambda x: torch.stack([-(x**3), 5 * x]), x.detach())
torch.testing.assert_close(torch.stack([first, second]), reference)
