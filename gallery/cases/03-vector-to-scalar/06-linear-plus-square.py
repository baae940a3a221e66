"""`2·x[0] + x[1]²` on a plain vector: a 0-d output

x = (1, 2) is a plain vector (shape [2]), so indexing `x[0]` gives a 0-d tensor and y = 2x₀ + x₁² is 0-d. Its
gradient is the row (2, 2x₁) = (2, 4): each SelectBackward0 node puts its element's share into its own slot of x.
With the default seed v = 1 that is x.grad (first picture); with `gradient=torch.tensor(100.)`, 0-d like y, every
number below the seed is 100 times larger: (200, 400).
"""

import torch

import tracer

grads = []
for v in (None, torch.tensor(100.0)):
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = 2 * x[0] + x[1] ** 2
    tracer.trace(y, gradient=v)  # y.backward(gradient=v)
    grads.append(x.grad)  # tensor([2., 4.]), then tensor([200., 400.])

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"001 In [159]": {"pass": 1, "x": "[2., 4.]"}, "001 In [160]": {"pass": 2, "x": "[200., 400.]"}}
assert [g.tolist() for g in grads] == [[2.0, 4.0], [200.0, 400.0]]  # the tutorial's [2, 2*x[1]] times v
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: 2 * x[0] + x[1] ** 2, x.detach(), torch.tensor(100.0))
torch.testing.assert_close(grads[1], reference)
