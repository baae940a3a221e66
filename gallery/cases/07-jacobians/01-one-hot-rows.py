"""The Jacobian row by row, with one-hot seeds

`y = x @ M` maps the row x = [[10, 5]] to y = [[25, 40]]. Since yⱼ = Σᵢ xᵢMᵢⱼ, row j of the Jacobian ∂yⱼ/∂x is
column j of M, so J = Mᵀ. One backward pass with the one-hot seed eⱼ returns exactly row j. The graph must
survive the first pass (`retain_graph=True`, once `retain_variables`), and x.grad is zeroed between the passes,
or the rows would add up. The older tutorial stored each row as a column and so printed M itself.
"""

import torch

import tracer

M = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
x = torch.tensor([[10.0, 5.0]], requires_grad=True)
y = torch.mm(x, M)

J = torch.zeros(2, 2)
for j in range(2):
    v = torch.zeros_like(y)
    v[0, j] = 1.0  # one-hot: select output y[0, j]
    tracer.trace(y, gradient=v, retain_graph=True)
    J[j] = x.grad[0]
    x.grad.zero_()

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "002 In [42]": {
        "pass": [1, 2],
        "note": "`retain_variables=True` there is `retain_graph=True` today; it prints the rows as columns, M itself",
    }
}
torch.testing.assert_close(J, M.T)  # rows of J; as columns they give the tutorial's M
with tracer.paused():  # torch's own Jacobian (a check, not recorded)
    reference = torch.autograd.functional.jacobian(lambda x: torch.mm(x, M), x.detach()).reshape(2, 2)
torch.testing.assert_close(J, reference)
