"""The gradient of a Lyapunov function

For the system ẋ = Ax, V(x) = x₁² + x₂² = ‖x‖² is a Lyapunov function when it falls along every trajectory,
that is when V̇ = ∇V(x) · Ax < 0 for x ≠ 0. Autograd gives ∇V: at x = (2, 3) backward with the default v = 1
returns 2x = (4, 6), the numbers of the tutorial. The tutorial wrote V as `x.pow(2)`, a [2] output, and seeded it
with the one-element `torch.FloatTensor([1.0])`, which old PyTorch broadcast to (1, 1) and today's refuses: the
Errors entry "A [1] seed over a [2] output" shows that call. Here V sums the squares, a scalar, so the default seed
is right. With A = [[-1, 2], [-2, -1]], Ax = (4, -7) and V̇ = 16 - 42 = -26 = -2‖x‖²: V falls.
"""

import torch

import tracer


def V(x):
    return x.pow(2).sum()


A = torch.tensor([[-1.0, 2.0], [-2.0, -1.0]])
x = torch.tensor([2.0, 3.0], requires_grad=True)
tracer.trace(V(x))  # V(x).backward()
V_dot = x.grad @ (A @ x.detach())  # dV/dt along ẋ = Ax: -26

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"002 In [6]": {"pass": 1, "x": "4 6", "note": "V summed and the default seed: the cell fails as written"}}
assert x.grad.tolist() == [4.0, 6.0]  # ∇V = 2x, the tutorial's numbers
assert V_dot.item() == -26.0 == -2 * V(x).item()
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(V, x.detach(), torch.tensor(1.0))
torch.testing.assert_close(x.grad, reference)
