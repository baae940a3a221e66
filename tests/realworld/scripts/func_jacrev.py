"""Jacobians with torch.func: jacrev (and jacrev of jacrev, a Hessian) of a small vector function."""

import torch
from realworld_io import save_grads
from torch.func import hessian, jacrev

torch.manual_seed(0)
A = torch.randn(3, 4)


def f(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(A @ x) * x[:3]


x = torch.randn(4)
J = jacrev(f)(x)
print("jacobian shape:", tuple(J.shape))
print("jacobian row 0:", [round(v, 6) for v in J[0].tolist()])
J1 = jacrev(f, chunk_size=1)(x)  # row by row with vjp's pullback, no vmap: gradtrace records each row's pass
print("jacrev(chunk_size=1) agrees:", torch.allclose(J1, J))
H = jacrev(jacrev(lambda t: f(t).sum()))(x)
print("hessian symmetric:", torch.allclose(H, H.T, atol=1e-6))
print("hessian trace:", round(H.trace().item(), 6))
print("hessian() agrees:", torch.allclose(hessian(lambda t: f(t).sum())(x), H))

# the Jacobian row by row with torch.autograd.grad
xr = x.clone().requires_grad_()
y = f(xr)
rows = [torch.autograd.grad(y[i], xr, retain_graph=True)[0] for i in range(3)]
print("autograd.grad rows agree:", torch.allclose(torch.stack(rows), J))
y.sum().backward()
save_grads({"x": xr.grad, "func.jacrev": J, "func.jacrev_rows": J1, "func.hessian": H})
