"""Row times column with a [1, 1] seed

Written out, the seed for the [1, 1] output must be [1, 1] too: `gradient=torch.tensor([[100.]])`. It scales
the gradient: x.grad = 100 · aᵀ = [[100], [200]]. The older tutorials also passed seeds of shape [1, 2] and
[2, 1] here and got [[400], [800]]; today those are errors, explained in the Errors section with their modern
spelling.
"""

import torch

import tracer

a = torch.tensor([[1.0, 2.0]])
x = torch.tensor([[3.0], [5.0]], requires_grad=True)
y = torch.mm(a, x)
v = torch.tensor([[100.0]])  # shape [1, 1], like y

t = tracer.trace(y, gradient=v)  # y.backward(gradient=v)

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"001 In [220]": {"pass": 1, "x": "[[100.], [200.]]"}}
assert t.seeds[0].shape == (1, 1)
torch.testing.assert_close(x.grad, 100 * a.T)
assert x.grad.tolist() == [[100.0], [200.0]]  # the tutorial's numbers

with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: torch.mm(a, x), x.detach(), v)
torch.testing.assert_close(x.grad, reference)
