"""One transformer layer: the scale view

One `nn.TransformerEncoderLayer` (model width 16, 2 heads, feed-forward 32) on a batch of 2 sequences of 5 tokens:
a backward pass of 54 steps, shown compact (names and gradient norms, with every detail in the tooltips).
The attention's input bias is frozen: the key third of its gradient is zero in exact arithmetic (softmax ignores
a shift shared by every key), and which of those zeros come out exact depends on the CPU. The loss Σ w ⊙ out
with fixed random weights w makes the seed simple (v = 1) and gives a closed form for the layer's last operation,
the second LayerNorm: its bias receives Σ w over the tokens, its weight Σ w ⊙ (the normalised input). Colours
show where gradients grow or shrink on their way back.
"""

import torch

import tracer

DRAWING = {"detail": "compact"}  # how the gallery draws this pass: node names and gradient norms

torch.manual_seed(0)
layer = torch.nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True).double().eval()
# The key third of the attention's input bias gets a gradient that is zero in exact arithmetic (softmax ignores a
# shift shared by every key); in floating point some of it comes out as exact zeros and some as 1e-17, depending on
# the CPU's rounding. Frozen here, so the committed picture is the same on every machine.
layer.self_attn.in_proj_bias.requires_grad_(False)
x = torch.randn(2, 5, 16, dtype=torch.float64)
w = torch.randn(2, 5, 16, dtype=torch.float64)

with tracer.record(model=layer) as rec:
    out = layer(x)
    loss = (w * out).sum()
    loss.backward()

# --- checks: the closed form, torch's own vᵀJ -------------------------------------
assert len(rec.traces[0].steps) == 54 and "layer.norm2.bias" in rec.traces[0].leaves
torch.testing.assert_close(layer.norm2.bias.grad, w.sum((0, 1)))  # the closed form for the last LayerNorm
with tracer.paused():  # torch's own (not recorded)
    trained = [p for p in layer.parameters() if p.requires_grad]
    again = torch.autograd.grad((w * layer(x)).sum(), trained)
for param, reference in zip(trained, again, strict=True):
    torch.testing.assert_close(param.grad, reference)
