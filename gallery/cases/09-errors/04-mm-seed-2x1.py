"""A [2, 1] seed for a [1, 1] output

The same product, y = [[13.]], with the tutorial's other seed, `torch.tensor([[100.], [300.]])`, of shape
[2, 1]. Old PyTorch summed it to [[400.]] as well, hence the same [[400], [800]]. The shape of v is not the
shape of x (which happens to be [2, 1] here): v weights the outputs, so it always has the output's shape.
"""

import torch

import tracer

a = torch.tensor([[1.0, 2.0]])
x = torch.tensor([[3.0], [5.0]], requires_grad=True)
y = torch.mm(a, x)
v = torch.tensor([[100.0], [300.0]])

try:
    tracer.trace(y, gradient=v)
except RuntimeError as exc:
    error = exc

tracer.trace(y, gradient=v.sum_to_size(y.shape))  # the modern call

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "001 In [222]": {"pass": 1, "x": "[[400.], [800.]]", "note": "fails as written; pass 1 sums the seed first"}
}
assert "Mismatch in shape" in str(error) and any("[[400.0]]" in n for n in error.__notes__)
assert x.grad.tolist() == [[400.0], [800.0]]
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: torch.mm(a, x), x.detach(), torch.tensor([[400.0]]))
torch.testing.assert_close(x.grad, reference)
