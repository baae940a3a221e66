"""`torch.autograd.backward([y], [v])` with an arbitrary seed

`torch.autograd.backward` takes lists: outputs and one seed per output. `y.backward(v)` is the same call for a
single output. Here y = x² element by element and v is a vector of random-looking weights (the numbers one
tutorial drew with `torch.randn`). The Jacobian is diagonal, diag(2x), so vᵀJ = 2x·v element by element:
x.grad = (2·1·v₁, 2·2·v₂, 2·3·v₃) ≈ (-0.2696, -4.369, -2.846).
"""

import torch
from torch.autograd.functional import vjp

import tracer

x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = x**2
v = torch.tensor([-0.1348, -1.0923, -0.4743])  # the tutorial's torch.randn(3)

torch.autograd.backward([y], [v])  # recorded by the gallery's tracer.record() block

torch.testing.assert_close(x.grad, 2 * x.detach() * v)  # vᵀ·diag(2x)
torch.testing.assert_close(x.grad, torch.tensor([-0.2696, -4.3690, -2.8456]), atol=1e-3, rtol=0)  # as printed
with tracer.paused():  # torch's own vᵀJ (a check, not recorded)
    _, reference = vjp(lambda x: x**2, x.detach(), v)
torch.testing.assert_close(x.grad, reference)
assert x.grad.shape == v.shape
