"""A DataLoader with two worker processes feeding a small classifier, one epoch."""

import torch
from realworld_io import module_grads, save_grads
from torch import nn
from torch.utils.data import DataLoader, Dataset


class Blobs(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Two Gaussian blobs; sample i is generated from its own seed, so any worker makes the same sample."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        label = i % 2
        return torch.randn(2, generator=g) + (2.0 if label else -2.0), torch.tensor(label)


if __name__ == "__main__":
    torch.manual_seed(0)
    loader = DataLoader(Blobs(), batch_size=16, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0))
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for i, (xb, yb) in enumerate(loader):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        print(f"batch {i}: labels {yb.tolist()} loss {loss.item():.6f}")
    save_grads(module_grads(model))
