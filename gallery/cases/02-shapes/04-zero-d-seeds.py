"""A 0-d tensor with the seed written out: `tensor(1.)` and `tensor(100.)`

The same 0-d `y = 2x + x²` at x = 1, now with the seed passed as `gradient=`. For a 0-d output the seed is a 0-d
tensor too: `torch.tensor(1.)` spells out the default and gives dy/dx = 2 + 2x = 4 again, and
`torch.tensor(100.)` weights it by 100, giving 400. The two passes have the same graph; compare their seed nodes
and the numbers below them, every one 100 times larger in the second. Each pass builds x and y afresh, as the
tutorial's cells do, so the second `x.grad` is not added to the first.
"""

import torch

import tracer

grads = []
for v in (torch.tensor(1.0), torch.tensor(100.0)):
    x = torch.tensor(1.0, requires_grad=True)
    y = 2 * x + x**2
    tracer.trace(y, gradient=v)  # y.backward(gradient=v)
    grads.append(x.grad)  # tensor(4.), then tensor(400.)

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"001 In [152]": {"pass": 1, "x": "4.0"}, "001 In [153]": {"pass": 2, "x": "400.0"}}
assert [g.shape for g in grads] == [(), ()] and [g.item() for g in grads] == [4.0, 400.0]  # v · (2 + 2x)
with tracer.paused():  # torch's own vᵀJ for both seeds (not recorded)
    for v, grad in zip((torch.tensor(1.0), torch.tensor(100.0)), grads, strict=True):
        _, reference = torch.autograd.functional.vjp(lambda x: 2 * x + x**2, x.detach(), v)
        torch.testing.assert_close(grad, reference)
