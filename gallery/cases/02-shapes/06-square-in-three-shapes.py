"""x² at x = 1 as a 0-d, a [1] and a [1, 1] tensor

The theory tutorial computes the derivative of x² at x = 1 three times, with x shaped `()`, `[1]` and `[1, 1]`,
and prints the seed torch makes for `y.backward()` in each case: `1.0`, `tensor([1.])` and `tensor([[1.]])`. The
seed always has y's shape, and y has x's shape here; the gradient is 2x = 2 each time, shaped like x. The three
pictures are the same graph, a PowBackward0 between seed and leaf, with the shapes in their labels.
"""

import torch

import tracer

grads = []
for value in (1.0, [1.0], [[1.0]]):
    x = torch.tensor(value, requires_grad=True)
    y = x**2
    tracer.trace(y)  # y.backward(): one element, so no seed needed
    grads.append(x.grad)  # tensor(2.), tensor([2.]), tensor([[2.]])

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "004 In [10] (1st)": {"pass": 1, "x": "2."},
    "004 In [1]": {"pass": 1, "x": "2.", "note": "identical to 004 In [10] (1st)"},
    "004 In [9]": {"pass": 1, "note": "identical computation; it prints the seed, 1.0"},
    "004 In [10] (2nd)": {"pass": 2, "note": "it prints the seed, tensor([1.])"},
    "004 In [11]": {"pass": 3, "note": "it prints the seed, tensor([[1.]])"},
}
assert [g.shape for g in grads] == [(), (1,), (1, 1)] and all(g.sum().item() == 2.0 for g in grads)
with tracer.paused():  # torch's own vᵀJ (not recorded)
    for grad in grads:
        _, reference = torch.autograd.functional.vjp(lambda x: x**2, torch.ones_like(grad), torch.ones_like(grad))
        torch.testing.assert_close(grad, reference)
