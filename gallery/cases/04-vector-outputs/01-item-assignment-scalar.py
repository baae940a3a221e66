"""Scalar in, vector out, by item assignment

`y = torch.zeros(2, 1)` is filled in place: `y[0] = x³`, `y[1] = 2x²`. Each assignment becomes a CopySlices
node, which sends the slot's share of v to the computation that filled it and the rest to what was there before
(the zeros, which need no gradient). The Jacobian is the column [3x², 4x], and v = ones adds its two entries:
x.grad = 3x² + 4x, the tutorial's answer to its "why?". Its x was random, printed as 0.9004 with the gradient
6.0341; this entry uses x = 0.9004361, which solves 3x² + 4x = 6.0341 and prints as 0.9004 (the rounded 0.9004
gives 6.0338).
"""

import torch

import tracer


def f(x):
    y = torch.zeros(2, 1)
    y[0] = x**3
    y[1] = 2 * x**2
    return y


x = torch.tensor([0.9004361], requires_grad=True)
y = f(x)
t = tracer.trace(y, gradient=torch.ones(y.size()))  # y.backward(gradient=torch.ones(y.size()))

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "000 In [26]": {"pass": 1, "x": "6.0341", "note": "random x there; here x = 0.9004361, from its printed gradient"}
}
torch.testing.assert_close(x.grad, 3 * x.detach() ** 2 + 4 * x.detach())  # the tutorial's 3*x**2 + 4*x
assert [f"{e:.4f}" for e in y.flatten().tolist()] == ["0.7301", "1.6216"]  # y as the tutorial printed it
assert sum(s.name == "CopySlices" for s in t.steps) == 2  # one per assignment
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(f, x.detach(), torch.ones(2, 1))
torch.testing.assert_close(x.grad, reference)
