"""A plain training loop: an MLP fitted to a synthetic regression target with SGD and momentum."""

import torch
from realworld_io import module_grads, save_grads
from torch import nn

torch.manual_seed(0)

inputs = torch.randn(256, 8)
targets = (inputs[:, :1] * 2 - inputs[:, 1:2].sin() + 0.1 * torch.randn(256, 1)).detach()

model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
loss_fn = nn.MSELoss()

for step in range(50):
    batch = torch.randint(0, 256, (32,))
    optimizer.zero_grad()
    loss = loss_fn(model(inputs[batch]), targets[batch])
    loss.backward()
    optimizer.step()
    if step % 10 == 0 or step == 49:
        print(f"step {step:2d}  loss {loss.item():.6f}")

with torch.no_grad():
    print(f"final full-batch loss {loss_fn(model(inputs), targets).item():.6f}")
save_grads(module_grads(model))
