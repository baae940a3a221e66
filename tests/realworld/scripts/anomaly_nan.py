"""Debugging a NaN: detect_anomaly catches the backward node that produced it; the script catches the error,
reports it, and goes on with a fixed loss."""

import torch
from realworld_io import save_grads

torch.manual_seed(0)
x = torch.tensor([1.0, 0.0, 4.0], requires_grad=True)

try:
    with torch.autograd.detect_anomaly():
        y = torch.sqrt(x) * 0.0  # sqrt'(0) = inf, times 0 gives NaN in backward
        y.sum().backward()
except RuntimeError as exc:
    print("caught:", str(exc).splitlines()[0])
print("x.grad after the failed pass:", x.grad)

with torch.autograd.set_detect_anomaly(True):
    try:
        torch.log(x).mul(x).sum().backward()  # log'(0) = inf, times 0: NaN again
    except RuntimeError as exc:
        print("caught again:", str(exc).splitlines()[0])
print("x.grad:", x.grad)

x.grad = None
safe = torch.sqrt(x.clamp_min(1e-6))
safe.sum().backward()
print("fixed grad:", [round(v, 3) for v in x.grad.tolist()] if x.grad is not None else None)

inf_leaf = torch.tensor([1e38, 2.0], requires_grad=True)
(inf_leaf * 1e10).sum().backward()  # the forward overflows to inf, the gradient itself is finite
print("grad next to an inf forward:", inf_leaf.grad.tolist() if inf_leaf.grad is not None else None)
save_grads({"x": x.grad, "inf_leaf": inf_leaf.grad})
