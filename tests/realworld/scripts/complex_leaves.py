"""Complex leaves: fitting a complex filter in the frequency domain (complex weights, FFT, a real loss)."""

import torch
from realworld_io import save_grads

torch.manual_seed(0)
signal = torch.randn(16)
target = torch.roll(signal, 2) * 0.5

filt = torch.randn(9, dtype=torch.complex64, requires_grad=True)
gain = torch.tensor(1.0 + 0.5j, requires_grad=True)
optimizer = torch.optim.Adam([filt, gain], lr=0.05)

for step in range(5):
    optimizer.zero_grad()
    out = torch.fft.irfft(torch.fft.rfft(signal) * filt * gain, n=16)
    loss = (out - target).abs().pow(2).mean() + 1e-3 * (filt.conj() * filt).real.sum()
    loss.backward()
    optimizer.step()
    print(f"step {step}: loss {loss.item():.6f}")

z = torch.tensor([1 + 2j, -0.5 + 0.25j], requires_grad=True)
(z * z.conj()).real.sum().backward()
assert z.grad is not None
print("d|z|^2/dz* (torch convention, 2z):", z.grad.tolist())
save_grads({"filt": filt.grad, "gain": gain.grad, "z": z.grad})
