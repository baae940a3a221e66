"""`detach()`: a constant cut out of the graph

`u = (x * x).detach()` has the values of x² but no history: to backward it is a constant. So `z = u * x` has
∂z/∂x = u, and after `z.sum().backward()` x.grad equals u, not the 3x² that z = x³ would give. The picture shows
the cut: MulBackward's edge towards u is dashed, it needs no gradient. The graph of `y = x * x` is untouched by
the detach: `y.sum().backward()` (the second picture) still gives 2x.
"""

import torch

import tracer

x = torch.arange(4.0, requires_grad=True)
y = x * x
u = y.detach()
z = u * x

tracer.trace(z.sum())  # z.sum().backward(): x.grad == u
first = x.grad.clone()
x.grad.zero_()
tracer.trace(y.sum())  # y.sum().backward(): x.grad == 2 * x

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "003 In [64]": {"pass": 1, "x": "[0., 1., 4., 9.]"},
    "003 In [67]": {"pass": 2, "note": "it prints x.grad == 2 * x: all True"},
}
assert torch.equal(first, u)  # the tutorial's check: x.grad == u
assert torch.equal(x.grad, 2 * x.detach())  # and x.grad == 2 * x
with tracer.paused():  # torch's own gradient of the detached product (not recorded)
    reference = torch.autograd.grad((y.detach() * x).sum(), x)[0]
assert torch.equal(reference, u)
