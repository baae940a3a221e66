"""A [1, 2] seed for a [1, 1] output

`torch.mm(a, x)` of the row a = [[1, 2]] and the column x = [[3], [5]] is [1, 1], but an older tutorial passed
`gradient=torch.tensor([[100., 300.]])`, of shape [1, 2]. Old PyTorch summed such a seed down to the output's
shape, so it acted as v = [[400.]], and x.grad came out as 400 · aᵀ = [[400], [800]]. Today the shapes must
match. To get that old result, sum the seed yourself: `v.sum_to_size(y.shape)`.
"""

import torch

import tracer

a = torch.tensor([[1.0, 2.0]])
x = torch.tensor([[3.0], [5.0]], requires_grad=True)
y = torch.mm(a, x)
v = torch.tensor([[100.0, 300.0]])

try:
    tracer.trace(y, gradient=v)
except RuntimeError as exc:
    error = exc

tracer.trace(y, gradient=v.sum_to_size(y.shape))  # the modern call: v = [[400.]]

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "001 In [221]": {"pass": 1, "x": "[[400.], [800.]]", "note": "fails as written; pass 1 sums the seed first"}
}
assert "Mismatch in shape" in str(error) and any("sum_to_size" in n for n in error.__notes__)
assert x.grad.tolist() == [[400.0], [800.0]]  # the tutorial's result
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: torch.mm(a, x), x.detach(), torch.tensor([[400.0]]))
torch.testing.assert_close(x.grad, reference)
