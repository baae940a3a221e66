"""Activation checkpointing with torch.utils.checkpoint, both implementations (use_reentrant=True and False),
checked against the same model run without checkpointing."""

import torch
from realworld_io import module_grads, save_grads
from torch import nn
from torch.utils.checkpoint import checkpoint, checkpoint_sequential

torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Dropout(0.1), nn.Linear(8, 8)) for _ in range(3)]
        )
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        for block in self.blocks:
            if mode == "plain":
                x = x + block(x)
                continue
            x = x + checkpoint(block, x, use_reentrant=(mode == "reentrant"))
        return self.head(x).sum()


net = Net()
x = torch.randn(4, 8, requires_grad=True)
grads = {}
for mode in ("plain", "reentrant", "non-reentrant"):
    net.zero_grad()
    x.grad = None
    torch.manual_seed(1)  # the same dropout masks in every mode (checkpoint restores the RNG on recompute)
    out = net(x, mode)
    out.backward()
    assert x.grad is not None
    print(f"{mode:>13}: out {out.item():.6f}, |x.grad| {x.grad.norm().item():.6f}")
    grads.update(module_grads(net, prefix=f"{mode}."))
    grads[f"{mode}.x"] = x.grad

seq = nn.Sequential(*[nn.Linear(8, 8) for _ in range(4)])
inp = torch.randn(2, 8, requires_grad=True)
checkpoint_sequential(seq, 2, inp, use_reentrant=False).pow(2).sum().backward()
print("checkpoint_sequential input grad norm:", round(inp.grad.norm().item(), 6) if inp.grad is not None else None)
grads.update(module_grads(seq, prefix="seq."))
grads["inp"] = inp.grad
save_grads(grads)
