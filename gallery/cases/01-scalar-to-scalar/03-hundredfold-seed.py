"""A seed of 100: the gradient scales with v

The seed is not a switch but a weight. With v = 100 backward computes vᵀJ = 100 · 6x, so `x.grad` is 100 times
the derivative. Follow the number down the picture: the seed 100 enters MulBackward0 (the `3 *`), which sends
3 · 100 = 300 on, and PowBackward0 (the `x**2`) turns that into 300 · 2x ≈ 455.2. Each node multiplies the v it
receives by its local derivative, so every number in the picture is 100 times what the default seed gives:
backward is linear in v. The tutorial's x was random, printed as 0.7586, and gave 455.1819; this entry uses
x = 0.7586365 (455.1819 / 600), which prints the same and gives the same 455.1819 (the rounded 0.7586 gives 455.16).
"""

import torch

import tracer

x = torch.tensor([0.7586365], requires_grad=True)
y = 3 * x**2
v = 100 * torch.ones(1)
t = tracer.trace(y, gradient=v)  # y.backward(gradient=v), recorded

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "000 In [9]": {"pass": 1, "x": "455.1819", "note": "random x there; here x = 0.7586365, from its printed gradient"}
}
torch.testing.assert_close(x.grad, 100 * 6 * x.detach())  # v times the derivative
assert f"{x.item():.4f}" == "0.7586" and f"{x.grad.item():.4f}" == "455.1819"  # as the tutorial printed them
mul, pow_ = t.steps[0], t.steps[1]  # 100 -> 300 -> 455.2
assert (mul.name, mul.v[0].values, mul.vjp[0].values) == ("MulBackward0", (100.0,), (300.0,))
assert pow_.name == "PowBackward0" and abs(pow_.vjp[0].values[0] - 455.1819) < 1e-3
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: 3 * x**2, x.detach(), v)
torch.testing.assert_close(x.grad, reference)
torch.testing.assert_close(t.leaves["x"].grad.as_tensor(), x.grad)
