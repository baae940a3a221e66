"""Vector in, vector out: the seed weights each element

`y = 3.14 * x` acts on each element alone, so its Jacobian is diagonal, 3.14 times the identity. vᵀJ then
multiplies each weight of v by 3.14: with v = (1, 1) the result is (3.14, 3.14) (first picture), with
v = (10, 100) it is (31.4, 314) (second). A non-uniform v is how a later computation tells this one how much each
output matters.
"""

import torch

import tracer

grads = []
for v in (torch.tensor([1.0, 1.0]), torch.tensor([10.0, 100.0])):
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = 3.14 * x
    tracer.trace(y, gradient=v)  # y.backward(v)
    grads.append(x.grad)  # 3.14 · v

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "001 In [168]": {"pass": 1, "x": "[3.1400, 3.1400]"},
    "001 In [169]": {"pass": 2, "x": "[ 31.4000, 314.0000]"},
}
torch.testing.assert_close(grads[0], 3.14 * torch.ones(2))  # v times the diagonal of J
torch.testing.assert_close(grads[1], 3.14 * v)
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: 3.14 * x, x.detach(), v)
torch.testing.assert_close(grads[1], reference)
