"""Shape [1]: a vector of one element

`x = torch.tensor([1.])` is a vector of one element, so `y = 2x + x²` is one too, and a seed written out must be
the vector `tensor([100.])`: one weight for the one output element. The result is vᵀJ = 100 · (2 + 2x) = [400.].
A 0-d seed `tensor(100.)` holds the same number but has the wrong shape, and today's torch refuses it with
"Mismatch in shape" (the checks try it). None of the tutorials did that: the 0-d seeds they pass all go with 0-d
outputs.
"""

import torch

import tracer

x = torch.tensor([1.0], requires_grad=True)
y = 2 * x + x**2
v = torch.tensor([100.0])  # shape [1], like y
t = tracer.trace(y, gradient=v)  # y.backward(gradient=v)

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"001 In [157]": {"pass": 1, "x": "[400.]"}}
assert t.seeds[0].shape == (1,) and x.grad.shape == (1,)
torch.testing.assert_close(x.grad, v * (2 + 2 * x.detach()))  # the tutorial's manual result: [400.]
with tracer.paused():  # torch's own vᵀJ (not recorded), and the 0-d seed it refuses
    _, reference = torch.autograd.functional.vjp(lambda x: 2 * x + x**2, x.detach(), v)
    try:
        (2 * x + x**2).backward(gradient=torch.tensor(100.0))
    except RuntimeError as exc:
        assert "Mismatch in shape" in str(exc)
    else:
        raise AssertionError("torch accepted a 0-d seed for a [1] output")
torch.testing.assert_close(x.grad, reference)
