"""torch.compile on a small loss function, trained for a few steps; skips (with a message) when compiling does
not work on this machine, e.g. without a C++ compiler."""

import torch
from realworld_io import save_grads

torch.manual_seed(0)


def loss_fn(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    pred = torch.sigmoid(x @ w + b)
    return -(y * pred.log() + (1 - y) * (1 - pred).log()).mean()


x = torch.randn(64, 3)
y = (x[:, 0] > 0).float()
w = torch.zeros(3, requires_grad=True)
b = torch.zeros((), requires_grad=True)

compiled = torch.compile(loss_fn)
try:
    first = compiled(w, b, x, y)
except Exception as exc:  # no compiler toolchain, unsupported platform, ...
    print(f"torch.compile unavailable here, skipped: {type(exc).__name__}")
    save_grads({"w": None, "b": None})
    raise SystemExit(0) from None

optimizer = torch.optim.SGD([w, b], lr=0.5)
loss = first
for step in range(4):
    if step:
        loss = compiled(w, b, x, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    print(f"step {step}: loss {loss.item():.6f}")
print("w:", [round(v, 6) for v in w.tolist()])
save_grads({"w": w.grad, "b": b.grad})
