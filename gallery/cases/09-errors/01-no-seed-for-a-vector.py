"""A vector output without a seed

`y = 2 * x` has two elements, and `y.backward()` fails: "grad can be implicitly created only for scalar
outputs". Backward computes vᵀJ, and for a two-element y there is no natural v: ones would add the two elements'
gradients, a one-hot v would pick one. torch will not guess, so you say which with `gradient=`. The modern call
beside the error passes `torch.ones_like(y)`, the same as `y.sum().backward()`: x.grad = (2, 2).
"""

import torch

import tracer

x = torch.tensor([1.0, 2.0], requires_grad=True)
y = 2 * x

try:
    tracer.trace(y)  # y.backward() without a seed
except RuntimeError as exc:
    error = exc  # the gallery shows it with gradtrace's note
tracer.trace(y, gradient=torch.ones_like(y))  # the modern call

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "001 In [167]": {
        "pass": 1,
        "note": "commented out there, with the error it gives; shown here, then the modern call",
    }
}
assert "implicitly created only for scalar outputs" in str(error)
assert any("ones_like" in note for note in error.__notes__)  # gradtrace's note names the fix
assert x.grad.tolist() == [2.0, 2.0]
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: 2 * x, x.detach(), torch.ones(2))
torch.testing.assert_close(x.grad, reference)
