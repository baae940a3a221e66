"""Vector in, vector out, by item assignment: the gradients add up

`y[0] = x₀²`, `y[1] = x₁³`, `y[2] = x₁⁴` fill a [3, 1] output from two inputs. x₁ feeds two outputs, so its
gradient is the sum of both contributions, 3x₁² + 4x₁³: the tutorial's "cumulative grad". The seed v = 100·ones
weights every output by 100, so x.grad = 100 · (2x₀, 3x₁² + 4x₁³). In the picture, follow the two paths from y[1]
and y[2] meeting at x. The tutorial's x was random, printed as (0.2234, 0.2954) with the gradient
(44.6700, 36.4815); this entry uses x = (0.22335, 0.295373), recovered from that gradient, which prints the same
(the rounded x would give 44.68 and 36.49).
"""

import torch

import tracer


def f(x):
    y = torch.zeros(3, 1)
    y[0] = x[0] ** 2
    y[1] = x[1] ** 3
    y[2] = x[1] ** 4
    return y


x = torch.tensor([[0.22335], [0.295373]], requires_grad=True)
y = f(x)
v = 100 * torch.ones(y.size())
t = tracer.trace(y, gradient=v)  # y.backward(gradient=100 * torch.ones(y.size()))

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "000 In [39]": {
        "pass": 1,
        "x": "44.6700 36.4815",
        "note": "random x there; here (0.22335, 0.295373), from its printed gradient",
    }
}
x0, x1 = x.detach()
torch.testing.assert_close(x.grad, 100 * torch.stack([2 * x0, 3 * x1**2 + 4 * x1**3]))
assert [f"{e:.4f}" for e in x.flatten().tolist()] == ["0.2234", "0.2954"]  # x as the tutorial printed it
assert [f"{e.item():.4f}" for e in (2 * x0, 3 * x1**2, 4 * x1**3)] == ["0.4467", "0.2617", "0.1031"]  # its In [41]
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(f, x.detach(), v)
torch.testing.assert_close(x.grad, reference)
