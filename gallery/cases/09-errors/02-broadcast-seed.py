"""A [1] seed over a [1, 4] output

An older tutorial computed `V = x**2 + x**4` for x = [[1, 2, 3, 4]] and called `V.backward(torch.FloatTensor([1.0]))`.
PyTorch of that time broadcast the one-element seed over the four outputs, so it meant v = ones. Today the seed
must have the output's exact shape, and torch stops with "Mismatch in shape". Write the seed out:
`gradient=torch.ones_like(V)` gives the tutorial's result, dV/dx = 2x + 4x³ = (6, 36, 114, 264).
"""

import torch

import tracer

x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], requires_grad=True)
V = x**2 + x**4

try:
    tracer.trace(V, gradient=torch.tensor([1.0]))  # V.backward(torch.FloatTensor([1.0]))
except RuntimeError as exc:
    error = exc
tracer.trace(V, gradient=torch.ones_like(V))  # the modern call

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"002 In [52]": {"pass": 1, "x": "6 36 114 264", "note": "fails as written; pass 1 is the modern call"}}
assert "Mismatch in shape" in str(error)
assert any("[1, 4]" in note for note in error.__notes__)
assert x.grad.tolist() == [[6.0, 36.0, 114.0, 264.0]]  # the tutorial's "works as planned" numbers
torch.testing.assert_close(x.grad, 2 * x.detach() + 4 * x.detach() ** 3)
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: x**2 + x**4, x.detach(), torch.ones(1, 4))
torch.testing.assert_close(x.grad, reference)
