"""Two elements, two paths: `x[0]³ + 2·x[1]²`

x is a column of two numbers and y = x₀³ + 2x₁² is one number (shape [1]). Its gradient is the row
[3x₀², 4x₁]. In the graph, each indexing `x[0]` and `x[1]` is its own node: one sends 3x₀² into the first slot
of x, the other 4x₁ into the second, and x's node adds the two (a zero where each has nothing to say). The seed
is the default v = 1, so the result is the gradient itself. The tutorial's x was random, printed as
(0.9647, 0.8132); this entry uses x = (0.9647452, 0.8132), recovered from the printed gradient (2.7922, 3.2528).
"""

import torch

import tracer

x = torch.tensor([[0.9647452], [0.8132]], requires_grad=True)
y = x[0] ** 3 + 2 * x[1] ** 2
t = tracer.trace(y)  # y.backward()

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "000 In [12]": {
        "pass": 1,
        "x": "2.7922 3.2528",
        "note": "random x there; here x = (0.9647452, 0.8132), from its printed gradient",
    }
}
torch.testing.assert_close(x.grad, torch.stack([3 * x[0] ** 2, 4 * x[1]]).detach())  # the tutorial's check
assert [f"{v:.4f}" for v in x.flatten().tolist()] == ["0.9647", "0.8132"]  # x as the tutorial printed it
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: x[0] ** 3 + 2 * x[1] ** 2, x.detach(), torch.ones(1))
torch.testing.assert_close(x.grad, reference)
assert sum(s.name == "SelectBackward0" for s in t.steps) == 2  # one node per x[i]
