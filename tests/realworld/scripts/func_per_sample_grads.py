"""Per-sample gradients with torch.func (the tutorial recipe): vmap(grad(compute_loss)) over functional_call,
checked against a loop of torch.func.grad and a loop of ordinary backward passes, one per sample."""

import torch
import torch.nn.functional as F
from realworld_io import save_grads
from torch import nn
from torch.func import functional_call, grad, vmap

torch.manual_seed(0)


class SimpleCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).flatten(1))


model = SimpleCNN()
data = torch.randn(8, 1, 8, 8)
targets = torch.randint(0, 10, (8,))

params = {k: v.detach() for k, v in model.named_parameters()}
buffers = {k: v.detach() for k, v in model.named_buffers()}


def compute_loss(
    params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], sample: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    prediction = functional_call(model, (params, buffers), (sample.unsqueeze(0),))
    return F.cross_entropy(prediction, target.unsqueeze(0))


per_sample = vmap(grad(compute_loss), in_dims=(None, None, 0, 0))(params, buffers, data, targets)
for name, g in per_sample.items():
    print(f"{name}: per-sample grads {tuple(g.shape)}, norm {g.norm().item():.6f}")

# the same with a loop of grad (no vmap): gradtrace records each sample's pass, parameters named model.fc.bias, ...
for i in range(len(data)):
    looped = grad(compute_loss)(params, buffers, data[i], targets[i])
    if any(not torch.allclose(looped[name], per_sample[name][i], atol=1e-6) for name in params):
        print(f"sample {i}: grad loop and vmap differ")
print("loop of torch.func.grad agrees")

# the slow way: one backward per sample
for i in range(len(data)):
    model.zero_grad()
    F.cross_entropy(model(data[i : i + 1]), targets[i : i + 1]).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None
        if not torch.allclose(p.grad, per_sample[name][i], atol=1e-6):
            print(f"sample {i} {name}: mismatch")
print("loop of backward passes agrees")
grads: dict[str, torch.Tensor | None] = {n: p.grad for n, p in model.named_parameters()}
grads.update({f"per_sample.{n}": g for n, g in per_sample.items()})
save_grads(grads)
