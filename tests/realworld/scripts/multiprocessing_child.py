"""A child process (start method 'spawn') trains its own copy of a model and sends its gradients back; the
parent computes the same step itself and checks the child's result."""

import multiprocessing as mp
from typing import Any

import torch
from realworld_io import module_grads, save_grads
from torch import nn


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2))


def step(model: nn.Module, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(10, 3, generator=g)
    loss = model(x).pow(2).mean()
    loss.backward()
    return loss.detach()


def child(seed: int, queue: "mp.Queue[dict[str, torch.Tensor]]", received: Any) -> None:
    model = make_model()
    loss = step(model, seed)
    queue.put({"loss": loss, **{n: p.grad for n, p in model.named_parameters() if p.grad is not None}})
    received.wait(60)  # tensors travel through shared memory: stay alive until the parent has them


if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    queue: "mp.Queue[dict[str, torch.Tensor]]" = ctx.Queue()
    received = ctx.Event()
    process = ctx.Process(target=child, args=(7, queue, received))
    process.start()
    from_child = {n: t.clone() for n, t in queue.get(timeout=60).items()}
    received.set()
    process.join(timeout=60)
    print("child exit code:", process.exitcode)

    model = make_model()
    loss = step(model, 7)
    print(f"parent loss {loss.item():.6f}, child loss {from_child['loss'].item():.6f}")
    same = all(torch.equal(p.grad, from_child[n]) for n, p in model.named_parameters() if p.grad is not None)
    print("child gradients equal the parent's:", same)
    save_grads({**module_grads(model), **{f"child.{n}": t for n, t in from_child.items() if n != "loss"}})
