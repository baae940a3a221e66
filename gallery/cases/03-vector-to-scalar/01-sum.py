"""The sum of a vector

`y = x.sum()` adds the two elements of x into a 0-d scalar. Its Jacobian is the row [1, 1] (each element counts
once), so backward returns vᵀJ = [v, v], whatever the values of x: [1, 1] with the default seed v = 1 (first
picture), [100, 100] with `gradient=torch.tensor(100.)` (second). SumBackward0 copies the v it receives to every
element. The seed is 0-d because y is: `tensor(100.)`, not `tensor([100.])`.
"""

import torch

import tracer

grads = []
for v in (None, torch.tensor(100.0)):  # the default seed, then 100 (0-d, like y)
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x.sum()
    tracer.trace(y, gradient=v)  # y.backward(gradient=v)
    grads.append(x.grad)  # tensor([1., 1.]), then tensor([100., 100.])

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"001 In [162]": {"pass": 1, "x": "[1., 1.]"}, "001 In [163]": {"pass": 2, "x": "[100., 100.]"}}
assert [g.tolist() for g in grads] == [[1.0, 1.0], [100.0, 100.0]]  # the tutorial's [1*gradient, 1*gradient]
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: x.sum(), x.detach(), torch.tensor(100.0))
torch.testing.assert_close(grads[1], reference)
