"""A job script that ends with os._exit (as some launchers and forked workers do): train a few steps, save,
print, flush, and leave with exit code 5 without running any cleanup."""

import os
import sys

import torch
from realworld_io import module_grads, save_grads
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(5, 5), nn.Sigmoid(), nn.Linear(5, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
x = torch.randn(20, 5)
y = torch.randn(20, 1)

for step in range(3):
    optimizer.zero_grad()
    loss = nn.functional.l1_loss(model(x), y)
    loss.backward()
    optimizer.step()
    print(f"step {step}: loss {loss.item():.6f}")

save_grads(module_grads(model))
print("done; exiting with os._exit(5)")
sys.stdout.flush()
os._exit(5)
