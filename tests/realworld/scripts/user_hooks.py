"""Every kind of hook a user registers: Tensor.register_hook (one that rescales, one that logs),
register_post_accumulate_grad_hook (an optimizer step inside backward), module full backward hooks and pre-hooks,
and grad_fn.register_hook / register_prehook. Each hook prints what it saw."""

from typing import Any

import torch
from realworld_io import module_grads, save_grads
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
log: list[str] = []


def norm(t: Any) -> str:
    return "None" if t is None else f"{t.norm().item():.6f}"


def module_pre_hook(module: nn.Module, grad_output: tuple[torch.Tensor, ...]) -> None:
    log.append(f"module pre-hook {type(module).__name__}: grad_output {norm(grad_output[0])}")


def module_hook(module: nn.Module, grad_input: tuple[Any, ...], grad_output: tuple[Any, ...]) -> tuple[Any, ...]:
    log.append(f"module hook {type(module).__name__}: grad_input {norm(grad_input[0])}")
    return tuple(None if g is None else g * 0.5 for g in grad_input)  # halves what flows further down


model[2].register_full_backward_pre_hook(module_pre_hook)
model[2].register_full_backward_hook(module_hook)
model[0].register_full_backward_hook(module_hook)

# an optimizer step per parameter as soon as its gradient is accumulated (the "fuse the step" recipe)
optimizers = {p: torch.optim.SGD([p], lr=0.1) for p in model.parameters()}


def step_in_backward(p: torch.Tensor) -> None:
    log.append(f"post-accumulate {tuple(p.shape)}: grad {norm(p.grad)}")
    optimizers[p].step()


for p in model.parameters():
    p.register_post_accumulate_grad_hook(step_in_backward)

x = torch.randn(5, 3, requires_grad=True)
h = model[1](model[0](x))
h.register_hook(lambda g: log.append(f"tensor hook on h: {norm(g)}"))
h.register_hook(lambda g: g.clamp(-0.05, 0.05))  # gradient clipping by a tensor hook
out = model[2](h)
loss = out.pow(2).sum()
assert loss.grad_fn is not None and out.grad_fn is not None
loss.grad_fn.register_prehook(lambda grad_outputs: log.append(f"grad_fn prehook {norm(grad_outputs[0])}"))
out.grad_fn.register_hook(lambda grad_inputs, grad_outputs: log.append(f"grad_fn hook {norm(grad_outputs[0])}"))
x.register_hook(lambda g: g * 2)
loss.backward()

print("\n".join(log))
print(f"x.grad norm {norm(x.grad)}")
print("first weight after the in-backward step:", [round(v, 6) for v in model[0].weight[0].tolist()])
save_grads({**module_grads(model), "x": x.grad})
