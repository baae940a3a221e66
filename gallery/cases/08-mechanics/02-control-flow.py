"""Python control flow: only the path taken is in the graph

f doubles b until its norm reaches 1000, then picks a branch by the sign of the sum. Autograd does not see the
`while` or the `if`: it records the operations that ran. For a = 100 those are a·2 and three more doublings
(200, 400, 800, 1600), and the branch `c = b`: the graph is four multiplications by 2, so d = 16a and
dd/da = 16 = d / a. Any input gives a piecewise linear f, which is why the tutorial checks `a.grad == d / a`.
"""

import torch

import tracer


def f(a):
    b = a * 2
    while b.norm() < 1000:
        b = b * 2
    c = b if b.sum() > 0 else 100 * b
    return c


a = torch.tensor(100.0, requires_grad=True)
d = f(a)
t = tracer.trace(d)  # d.backward()

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"003 In [79]": {"pass": 1, "a": "16."}}
assert d.item() == 1600.0 and a.grad.item() == 16.0  # the tutorial's numbers
assert a.grad == d / a  # f is linear on this path
assert [s.name for s in t.steps].count("MulBackward0") == 4  # a*2 and three doublings
with tracer.paused():  # torch's own derivative (not recorded)
    reference = torch.autograd.functional.jacobian(f, a.detach())
torch.testing.assert_close(a.grad, reference)
