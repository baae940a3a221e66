"""Mixed precision on CPU: forward under torch.autocast(bfloat16), loss and backward as usual, float32 grads."""

import torch
from realworld_io import module_grads, save_grads
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(8, 16)
labels = torch.randint(0, 4, (8,))

for step in range(3):
    optimizer.zero_grad()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    optimizer.step()
    print(f"step {step}: logits {logits.dtype}, loss {loss.dtype} {loss.item():.6f}")

print("grad dtypes:", sorted({str(p.grad.dtype) for p in model.parameters() if p.grad is not None}))
save_grads(module_grads(model))
