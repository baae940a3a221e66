"""Four passes over one graph without `retain_graph`

The tutorial's cell as written: `z = 2x + 3·x[0, 3]`, then `z.backward` three times with the seeds e₀, e₁ and
ones, then `loss.backward()` for `loss = z.sum(dim=1)`, all over one graph and with no `retain_graph=True`. Old
PyTorch ran all four. Today the first pass frees what the graph saved for backward (the multiplications keep
their factors), and the second stops with "Trying to backward through the graph a second time" at the first node
that needs them; the failed pass is drawn as far as it got. The fix is `retain_graph=True` on every pass but the
last, which the Whole Jacobians entry "One-hot rows where x is used twice" does, giving the tutorial's four rows.
"""

import torch

import tracer

x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], requires_grad=True)
z = 2 * x + 3 * x[0, 3]

tracer.trace(z, gradient=torch.tensor([[1.0, 0, 0, 0]]))  # z.backward(...): frees the graph
x.grad.zero_()
try:
    tracer.trace(z, gradient=torch.tensor([[0.0, 1, 0, 0]]))  # the tutorial's second z.backward(...)
except RuntimeError as exc:
    error = exc

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"002 In [46]": {"pass": [1, 2], "note": "as written: the first pass gives (2, 0, 0, 3), the second fails"}}
assert "backward through the graph a second time" in str(error)
assert error.partial_trace.complete is False
assert x.grad.tolist() == [[0.0, 0, 0, 0]]  # the failed pass delivered nothing
with tracer.paused():  # torch's own first row (not recorded)
    row = torch.autograd.grad((2 * x + 3 * x[0, 3])[0, 0], x)[0]
assert row.tolist() == [[2.0, 0, 0, 3]]
