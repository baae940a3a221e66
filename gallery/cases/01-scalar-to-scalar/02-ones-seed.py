"""Writing v = 1 yourself

Passing `gradient=torch.ones(1)` spells out the seed torch would have made. The graph is the same as with the
default and so are the numbers, vᵀJ = 1 · 6x; only the seed node differs: it shows the v you gave,
`gradient=tensor([1.])`, where the default one says `gradient=None`. Writing the seed out is what every later
example does, because outputs with more than one element have no default. The tutorial's x was random, printed as
0.8535; this entry uses x = 0.8534667 (its printed 5.1208 divided by 6), which prints the same.
"""

import torch

import tracer

x = torch.tensor([0.8534667], requires_grad=True)
y = 3 * x**2
v = torch.ones(1)
t = tracer.trace(y, gradient=v)  # y.backward(gradient=v), recorded

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "000 In [6]": {"pass": 1, "x": "5.1208", "note": "random x there; here x = 0.8534667, from its printed gradient"}
}
assert t.seeds[0].implicit is False and t.seeds[0].v.values == (1.0,)
torch.testing.assert_close(x.grad, 6 * x.detach())  # the same as with the default seed: 6x
assert f"{x.item():.4f}" == "0.8535" and f"{x.grad.item():.4f}" == "5.1208"  # as the tutorial printed them
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: 3 * x**2, x.detach(), v)
torch.testing.assert_close(x.grad, reference)
