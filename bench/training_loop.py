"""The training-loop section: SGD steps of an MLP 256-512-512-10 (batch 64), plain vs recorded, and memory growth.

Time: 1,000 steps per mode, modes interleaved in rounds, the ratio to the plain loop of the same round. Memory: RSS
growth over 10,000 recorded steps in a fresh interpreter per keep= policy (the process's own allocator state).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import tracer

KEEPS = ("all", "every:100,flagged")

_RSS_PROGRAM = """
import gc, json, sys, torch, tracer
from bench.training_loop import mlp_step
torch.set_num_threads(2)
keep, steps = sys.argv[1], int(sys.argv[2])
step = mlp_step()
def rss():
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')) / 1024
for _ in range(50):
    step()
with tracer.record(keep=keep) as rec:
    for _ in range(50):
        step()
    gc.collect(); start = rss()
    for _ in range(steps):
        step()
    gc.collect(); end = rss()
print(json.dumps({"growth_mib": end - start, "traces": len(rec.traces), "digests": len(rec.digests)}))
"""


def mlp_step() -> Any:
    """One SGD step of the issue's MLP on a fixed batch, as a function."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 256), torch.randint(0, 10, (64,))

    def step() -> None:
        opt.zero_grad()
        torch.autograd.backward(torch.nn.functional.cross_entropy(model(x), y))
        opt.step()

    return step


def training_loop(steps: int = 1000, rounds: int = 3, rss_steps: int = 10_000) -> dict[str, Any]:
    """Per mode: median ms per step and the median of each round's ratio to plain; RSS growth per keep policy."""
    step = mlp_step()
    for _ in range(50):
        step()
    times: dict[str, list[float]] = {"plain": [], **{f"recorded, keep={k!r}": [] for k in KEEPS}}
    for r in range(rounds):
        names = list(times)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            if name == "plain":
                for _ in range(steps):
                    step()
            else:
                with tracer.record(keep=name.split("=", 1)[1].strip("'")):
                    for _ in range(steps):
                        step()
            times[name].append((time.perf_counter() - started) / steps)
    plain = times["plain"]
    rows = {
        name: {
            "ms_per_step": statistics.median(t) * 1000,
            "ratio": statistics.median(a / b for a, b in zip(t, plain, strict=True)),
        }
        for name, t in times.items()
    }
    root = Path(__file__).resolve().parent.parent
    memory = {}
    for keep in KEEPS:
        done = subprocess.run(
            [sys.executable, "-c", _RSS_PROGRAM, keep, str(rss_steps)],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        memory[keep] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"steps": steps, "rss_steps": rss_steps, "time": rows, "rss": memory}


def print_training_loop(result: dict[str, Any]) -> None:
    print(f"\ntraining loop: MLP 256-512-512-10, batch 64, SGD, {result['steps']} steps per mode")
    for name, r in result["time"].items():
        print(f"  {name:36s} {r['ms_per_step']:8.3f} ms/step {r['ratio']:6.3f}x")
    print(f"  RSS growth over {result['rss_steps']} recorded steps (fresh interpreter):")
    for keep, m in result["rss"].items():
        per = m["growth_mib"] * 1024 / result["rss_steps"]
        print(f"  keep={keep!r:28s} {m['growth_mib']:8.1f} MiB ({per:.1f} KiB/pass, {m['traces']} traces kept)")
