"""Training in a background thread (as a GUI or server would): the main thread starts a worker thread that
runs the forward and backward passes, waits for it, and reports."""

import threading

import torch
from realworld_io import module_grads, save_grads
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
data = torch.randn(32, 4)
target = data.sum(dim=1, keepdim=True)
losses: list[float] = []


def train(steps: int) -> None:
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(data), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())


worker = threading.Thread(target=train, args=(3,), name="trainer")
worker.start()
worker.join()
print("losses from the worker thread:", [f"{v:.6f}" for v in losses])

# a second thread computing an input gradient with torch.autograd.grad
result: dict[str, torch.Tensor] = {}


def saliency() -> None:
    x = data[:2].clone().requires_grad_()
    (result["saliency"],) = torch.autograd.grad(model(x).sum(), x)


t = threading.Thread(target=saliency)
t.start()
t.join()
print("saliency:", [round(v, 6) for v in result["saliency"][0].tolist()])
save_grads({**module_grads(model), "saliency": result["saliency"]})
