"""The seed you do not write

`y = 3x²` has a single element, so `y.backward()` needs no `gradient`: torch makes the seed v = 1 by itself
(the seed node says `gradient=None`). The Jacobian of a one-element function is the 1×1 matrix [dy/dx] = [6x],
and vᵀJ = 1 · 6x, so `x.grad` is the ordinary derivative. As in the oldest tutorial, x is a one-element vector
(shape [1]); the seed torch makes has that shape too. The tutorial drew x with `torch.rand` and printed it to four
digits, 0.7073; this entry uses x = 0.7073333 (its printed gradient 4.2440 divided by 6), which prints the same and
gives the tutorial's 4.2440, where the rounded 0.7073 would give 4.2438.
"""

import torch

import tracer

x = torch.tensor([0.7073333], requires_grad=True)
y = 3 * x**2
t = tracer.trace(y)  # does what y.backward() does, and records it

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "000 In [3]": {"pass": 1, "x": "4.2440", "note": "random x there; here x = 0.7073333, from its printed gradient"}
}
seed = t.seeds[0]
assert seed.implicit and seed.v.values == (1.0,)  # torch chose v = 1
torch.testing.assert_close(x.grad, 6 * x.detach())  # the closed form d(3x²)/dx = 6x
assert f"{x.item():.4f}" == "0.7073" and f"{x.grad.item():.4f}" == "4.2440"  # as the tutorial printed them
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: 3 * x**2, x.detach(), torch.ones(1))
torch.testing.assert_close(x.grad, reference)
torch.testing.assert_close(t.leaves["x"].grad.as_tensor(), x.grad)  # what gradtrace recorded
