"""A small MLP: gradients by layer

A two-layer perceptron (4 → 16 → 1, tanh) fitted to 32 points with the mean squared error. The loss is a scalar,
so v = 1, and one pass fills the .grad of all four parameters. Tensors with more than 64 values are shown as
shape and statistics, nodes are grouped by the module that created them, and edge colours show how large each
gradient is. The last bias has a closed form: ∂L/∂b = 2·mean(prediction - target). Float64 keeps the drawn
numbers the same on every CPU.
"""

import torch

import tracer

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
inputs, target = torch.randn(32, 4, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)

with tracer.record(model=model) as rec:  # names leaves after parameters, groups nodes by module
    prediction = model(inputs)
    loss = ((prediction - target) ** 2).mean()
    loss.backward()

# --- checks: the closed form, torch's own vᵀJ -------------------------------------
trace = rec.traces[0]
assert set(trace.leaves) == {"model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias"}
torch.testing.assert_close(model[2].bias.grad, 2 * (prediction - target).mean(0).detach())  # the closed form
with tracer.paused():  # torch's own (not recorded)
    again = torch.autograd.grad(((model(inputs) - target) ** 2).mean(), list(model.parameters()))
for param, reference in zip(model.parameters(), again, strict=True):
    torch.testing.assert_close(param.grad, reference)
