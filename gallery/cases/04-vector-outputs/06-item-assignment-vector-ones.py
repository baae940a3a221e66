"""Vector in, vector out, by item assignment, with v = ones

The tutorial's first vector-to-vector case: `y[0] = x₀²`, `y[1] = x₁³`, `y[2] = x₁⁴` with the seed
`torch.ones(y.size())`. Its Jacobian has the rows (2x₀, 0), (0, 3x₁²) and (0, 4x₁³); v = ones adds them, so
x.grad = (2x₀, 3x₁² + 4x₁³): x₀ gets one contribution, x₁ two, the "cumulative grad". The entry before this one is
the same with v = 100·ones. The tutorial's x was random, printed as (0.3432, 0.5206) with the gradient
(0.6865, 1.3777); this entry uses x = (0.34324, 0.52064), which prints the same and gives those numbers, and the
tutorial's three terms 2x₀ = 0.6865, 3x₁² = 0.8132, 4x₁³ = 0.5645.
"""

import torch

import tracer


def f(x):
    y = torch.zeros(3, 1)
    y[0] = x[0] ** 2
    y[1] = x[1] ** 3
    y[2] = x[1] ** 4
    return y


x = torch.tensor([[0.34324], [0.52064]], requires_grad=True)
y = f(x)
t = tracer.trace(y, gradient=torch.ones(y.size()))  # y.backward(gradient=torch.ones(y.size()))

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "000 In [32]": {
        "pass": 1,
        "x": "0.6865 1.3777",
        "note": "random x there; here (0.34324, 0.52064), from its printed gradient",
    }
}
x0, x1 = x.detach()
torch.testing.assert_close(x.grad, torch.stack([2 * x0, 3 * x1**2 + 4 * x1**3]))
assert [f"{e:.4f}" for e in x.flatten().tolist()] == ["0.3432", "0.5206"]  # x as the tutorial printed it
assert [f"{e.item():.4f}" for e in (2 * x0, 3 * x1**2, 4 * x1**3)] == ["0.6865", "0.8132", "0.5645"]  # its In [34]
assert sum(s.name == "CopySlices" for s in t.steps) == 3
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(f, x.detach(), torch.ones(3, 1))
torch.testing.assert_close(x.grad, reference)
