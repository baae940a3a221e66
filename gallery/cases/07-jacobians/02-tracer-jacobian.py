"""The same Jacobian with `tracer.jacobian`

`tracer.jacobian(f, x)` does the one-hot loop for you: one backward pass per output element, each with its
one-hot seed, through `torch.autograd.grad`, so x.grad is never touched and nothing needs zeroing. When vmap can
batch the graph it computes all rows in one batched pass, then runs each row again as an ordinary pass so that
every row has a picture; the pictures are the same two passes as in the hand-written loop. For y = x @ M the
result is again J = Mᵀ, and it is checked against `torch.autograd.functional.jacobian`.
"""

import torch

import tracer

M = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
x = torch.tensor([[10.0, 5.0]], requires_grad=True)

J = tracer.jacobian(lambda x: torch.mm(x, M), x)

# --- checks: the closed form, the tutorial's printed numbers, torch's own vᵀJ -------------------------------------
TUTORIAL = {"002 In [42]": {"pass": [1, 2], "note": "the same Jacobian through `tracer.jacobian`"}}
torch.testing.assert_close(J.matrix, M.T)  # rows: y[0, 0] and y[0, 1]; columns: x[0, 0] and x[0, 1]
assert J.check is not None and J.check.ok  # agrees with torch.autograd.functional.jacobian
assert len(J.traces) == 2  # one recorded pass per row
for row, trace in enumerate(J.traces):
    assert trace.seeds[0].v.values == tuple(float(k == row) for k in range(2))  # the one-hot seed of that row
    assert trace.kind == "grad"  # torch.autograd.grad: x.grad stays None
assert x.grad is None
