"""`x[0]³ + 2·x[1]²` with the seeds `ones(1)` and `100 * ones(1)`

The same function as above, y = x₀³ + 2x₁² of shape [1], with the seed written out. `gradient=torch.ones(1)` is the
default spelt out: x.grad is the gradient [3x₀², 4x₁] itself. `gradient=100 * torch.ones(1)` multiplies it by 100.
The tutorial drew a new random x for each and printed it to four digits; this entry uses x = (0.0306567, 0.305444)
and x = (0.4522072, 0.13504996), recovered from the printed gradients (0.0028, 1.2218) and (61.3474, 54.0200),
so that they print as the tutorial's x did and give its numbers.
"""

import torch

import tracer

cases = [
    ([[0.0306567], [0.305444]], torch.ones(1)),  # x and the seed of the tutorial's In [16]
    ([[0.4522072], [0.13504996]], 100 * torch.ones(1)),  # and of its In [20]
]
grads = []
for value, v in cases:  # a new x for each seed, as in the tutorial
    x = torch.tensor(value, requires_grad=True)
    y = x[0] ** 3 + 2 * x[1] ** 2
    tracer.trace(y, gradient=v)  # y.backward(gradient=v)
    grads.append(x.grad)  # v · [3x₀², 4x₁]

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "000 In [16]": {"pass": 1, "x": "0.0028 1.2218", "note": "random x there; here (0.0306567, 0.305444)"},
    "000 In [20]": {"pass": 2, "x": "61.3474 54.0200", "note": "random x there; here (0.4522072, 0.13504996)"},
}
for (value, v), grad in zip(cases, grads, strict=True):
    x = torch.tensor(value)
    torch.testing.assert_close(grad, v * torch.stack([3 * x[0] ** 2, 4 * x[1]]))  # the tutorial's 3*x[0]**2, 4*x[1]
    with tracer.paused():  # torch's own vᵀJ (not recorded)
        _, reference = torch.autograd.functional.vjp(lambda x: x[0] ** 3 + 2 * x[1] ** 2, x, v)
    torch.testing.assert_close(grad, reference)
    assert [f"{e:.4f}" for e in x.flatten().tolist()] == [["0.0307", "0.3054"], ["0.4522", "0.1350"]][v.item() > 1]
