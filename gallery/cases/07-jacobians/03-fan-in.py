"""One-hot rows where x is used twice

`z = 2x + 3·x[0, 3]` uses x twice: whole, and through its last element. So x's node receives two gradients per
pass and adds them. With the one-hot seed e₀ only z₀ = 2x₀ + 3x₃ counts, giving (2, 0, 0, 3); e₁ gives
(0, 2, 0, 3). With v = ones every element counts: 2 for each from `2x`, plus 3 from each of the four elements
for x₃, so (2, 2, 2, 14), and `loss = z.sum(dim=1)` with its default seed gives the same (fourth picture). The
tutorial made these four passes over one graph without `retain_graph=True`, which old PyTorch allowed; today the
second pass fails (the entry "Four passes over one graph without `retain_graph`" in the Errors section shows it),
so here every pass but the last keeps the graph. x.grad is zeroed after each pass, as in the tutorial.
"""

import torch

import tracer

x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], requires_grad=True)
z = 2 * x + 3 * x[0, 3]
loss = z.sum(dim=1)

results = []
for v in ([[1.0, 0, 0, 0]], [[0.0, 1, 0, 0]], [[1.0, 1, 1, 1]]):
    tracer.trace(z, gradient=torch.tensor(v), retain_graph=True)  # z.backward(v), keeping the graph
    results.append(x.grad.tolist())
    x.grad.zero_()  # or the next pass adds to it
tracer.trace(loss)  # loss.backward(), the same as the seed ones

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {
    "002 In [46]": {
        "pass": [1, 2, 3, 4],
        "x": "2 0 0 3 then 0 2 0 3 then 2 2 2 14 then 2 2 2 14",
        "note": "`retain_graph=True` added: the tutorial's calls fail today on the second pass",
    }
}
assert results == [[[2.0, 0, 0, 3]], [[0.0, 2, 0, 3]], [[2.0, 2, 2, 14]]]  # the tutorial's rows
assert x.grad.tolist() == [[2.0, 2, 2, 14]]
with tracer.paused():  # torch's own vᵀJ (not recorded)
    _, reference = torch.autograd.functional.vjp(lambda x: 2 * x + 3 * x[0, 3], x.detach(), torch.ones(1, 4))
assert reference.tolist() == results[2] == x.grad.tolist()
