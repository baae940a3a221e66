"""`torch.autograd.backward([y], [v])` with an arbitrary seed

`torch.autograd.backward` takes lists: outputs and one seed per output. `y.backward(v)` is the same call for a
single output. Here y = x² element by element and v is a vector of random-looking weights. The Jacobian is
diagonal, diag(2x), so vᵀJ = 2x·v element by element: x.grad = (2·1·v₁, 2·2·v₂, 2·3·v₃). The tutorial drew v with
`torch.randn(3)` and printed it to four digits, (-0.1348, -1.0923, -0.4743); this entry uses
v = (-0.1348, -1.09226, -0.474266), recovered from the printed x.grad (-0.2696, -4.3690, -2.8456), which prints
the same (the rounded v would give -4.3692 and -2.8458).
"""

import torch

import tracer

x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = x**2
v = torch.tensor([-0.1348, -1.09226, -0.474266])  # the tutorial's torch.randn(3)
torch.autograd.backward([y], [v])  # recorded by the gallery's tracer.record() block

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "002 In [48]": {
        "pass": 1,
        "x": "-0.2696 -4.3690 -2.8456",
        "note": "random v there; here (-0.1348, -1.09226, -0.474266), from its printed gradient",
    }
}
torch.testing.assert_close(x.grad, 2 * x.detach() * v)  # vᵀ·diag(2x)
assert [f"{e:.4f}" for e in v.tolist()] == ["-0.1348", "-1.0923", "-0.4743"]  # v as the tutorial printed it
assert [f"{e:.4f}" for e in x.grad.tolist()] == ["-0.2696", "-4.3690", "-2.8456"]  # and x.grad
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: x**2, x.detach(), v)
torch.testing.assert_close(x.grad, reference)
