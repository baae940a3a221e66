"""Shape [1] with the default seed and with `tensor([1.])`

For the one-element vector x = [1.], `y = 2x + x²` has shape [1]. It has one element, so `y.backward()` works
without a seed: torch makes v = `tensor([1.])`, shaped like y (not the 0-d `tensor(1.)` of the 0-d case). Writing
that seed out, `gradient=torch.tensor([1.])`, is the same pass: both give x.grad = [4.], shaped like x. The two
pictures differ only in their seed nodes, the first saying `gradient=None`.
"""

import torch

import tracer

grads = []
for v in (None, torch.tensor([1.0])):
    x = torch.tensor([1.0], requires_grad=True)
    y = 2 * x + x**2
    tracer.trace(y, gradient=v)  # y.backward() and y.backward(gradient=tensor([1.]))
    grads.append(x.grad)  # tensor([4.]) both times

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"001 In [155]": {"pass": 1, "x": "[4.]"}, "001 In [156]": {"pass": 2, "x": "[4.]"}}
assert [g.tolist() for g in grads] == [[4.0], [4.0]]  # the tutorial's manual result 2 + 2x
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: 2 * x + x**2, x.detach(), torch.ones(1))
for grad in grads:
    torch.testing.assert_close(grad, reference)
