"""A second pass over a freed graph

Backward frees the tensors the graph saved for it (here x, which `PowBackward0` needs to compute 2x) as soon as
it is done. A second `backward` over the same graph then fails inside the pass, at the first node that needs
them: the picture of the failed pass marks that node. Keep the graph with `retain_graph=True` on every pass but
the last, as the Jacobian examples do; the modern calls beside the error then add 2x twice: x.grad = 4x.
"""

import torch

import tracer

x = torch.tensor([1.0, 2.0], requires_grad=True)
y = x**2
tracer.trace(y, gradient=torch.ones_like(y))  # frees the graph
try:
    tracer.trace(y, gradient=torch.ones_like(y))  # the same graph again
except RuntimeError as exc:
    error = exc

x.grad = None
y = x**2
tracer.trace(y, gradient=torch.ones_like(y), retain_graph=True)  # the modern calls
tracer.trace(y, gradient=torch.ones_like(y))

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
assert "backward through the graph a second time" in str(error) and error.partial_trace.complete is False
assert x.grad.tolist() == [4.0, 8.0]  # 2x, twice
with tracer.paused():  # torch's own gradient of one pass (not recorded)
    reference = torch.autograd.grad((x**2).sum(), x)[0]
torch.testing.assert_close(x.grad, 2 * reference)
