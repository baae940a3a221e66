"""torch.func.grad on a loss function, then an ordinary training step in the same process."""

import torch
from realworld_io import save_grads
from torch.func import grad

torch.manual_seed(0)


def loss_fn(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((x @ w).tanh() - y).pow(2).mean()


x = torch.randn(16, 4)
y = torch.randn(16)
w0 = torch.randn(4)

g = grad(loss_fn)(w0, x, y)
print("torch.func.grad:", [round(v, 6) for v in g.tolist()])
g_aux, prediction = grad(lambda w, x, y: (loss_fn(w, x, y), (x @ w).detach()), has_aux=True)(w0, x, y)
print("has_aux agrees:", torch.equal(g_aux, g), "prediction", tuple(prediction.shape))
g2 = grad(lambda t: grad(lambda u: u.sin().sum())(t).sum())(w0)  # -sin, the second derivative
print("grad of grad:", [round(v, 6) for v in g2.tolist()])

# The same gradient the ordinary way, afterwards in the same process.
w = w0.clone().requires_grad_()
loss_fn(w, x, y).backward()
assert w.grad is not None
print("backward agrees:", torch.allclose(w.grad, g))
save_grads({"w": w.grad, "func.grad": g, "func.grad_aux": g_aux, "func.grad_of_grad": g2})
