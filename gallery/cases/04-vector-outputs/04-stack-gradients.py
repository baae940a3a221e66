"""Vector in, vector out with `torch.stack`: one gradient per pass

`y = torch.stack([x.sum(), (x**2).sum()])` holds two scalar functions of x = (0, 1, 2, 3): f₁ = Σxᵢ and
f₂ = Σxᵢ². Its Jacobian has two rows, the gradients ∇f₁ = (1, 1, 1, 1) and ∇f₂ = 2x. A one-hot seed selects a
row: vᵀJ with v = (1, 0) is ∇f₁, with v = (0, 1) it is ∇f₂. The StackBackward node shows the selection at work:
it splits v into one number per stacked input, and the branch that gets 0 sends zeros on.
"""

import torch

import tracer

x = torch.arange(4, dtype=torch.float64, requires_grad=True)
y = torch.stack([x.sum(), (x**2).sum()])

tracer.trace(y, gradient=torch.tensor([1.0, 0.0]), retain_graph=True)
grad_f1 = x.grad.clone()
x.grad.zero_()
tracer.trace(y, gradient=torch.tensor([0.0, 1.0]))
grad_f2 = x.grad.clone()

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"004 In [17]": {"pass": [1, 2], "x": "(1.0, 1.0, 1.0, 1.0) then (0.0, 2.0, 4.0, 6.0)"}}
assert grad_f1.tolist() == [1.0, 1.0, 1.0, 1.0]  # the tutorial's gradient of y_1
assert grad_f2.tolist() == [0.0, 2.0, 4.0, 6.0]  # and of y_2: 2x
with tracer.paused():  # torch's own rows (not recorded)
    reference = torch.autograd.functional.jacobian(lambda x: torch.stack([x.sum(), (x**2).sum()]), x.detach())
torch.testing.assert_close(torch.stack([grad_f1, grad_f2]), reference)
