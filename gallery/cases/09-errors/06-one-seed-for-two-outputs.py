"""A [1] seed over a [2] output: the Lyapunov cell as written

The tutorial's Lyapunov cell computes `V = x.pow(2)` for x = (2, 3), a [2] output (one square per element, not yet
their sum), and calls `V.backward(torch.FloatTensor([1.0]))`. PyTorch of that time broadcast the one-element seed
over both outputs, so it meant v = (1, 1) and printed x.grad = 2x = (4, 6). Today the seed must have the output's
exact shape, and torch stops with "Mismatch in shape" before the pass starts. Write the seed out,
`gradient=torch.ones_like(V)`, or sum first: `V.sum().backward()`, which is how the Real models entry "The gradient
of a Lyapunov function" writes V. Both give (4, 6).
"""

import torch

import tracer

x = torch.tensor([2.0, 3.0], requires_grad=True)
V = x.pow(2)

try:
    tracer.trace(V, gradient=torch.tensor([1.0]))  # V.backward(torch.FloatTensor([1.0]))
except RuntimeError as exc:
    error = exc
tracer.trace(V, gradient=torch.ones_like(V))  # the modern call

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"002 In [6]": {"pass": 1, "x": "4 6", "note": "fails as written; pass 1 is the modern call"}}
assert "Mismatch in shape" in str(error) and any("[2]" in note for note in error.__notes__)
assert x.grad.tolist() == [4.0, 6.0]  # ∇V = 2x, the tutorial's numbers
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: x.pow(2), x.detach(), torch.ones(2))
torch.testing.assert_close(x.grad, reference)
