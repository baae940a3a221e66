"""python -m bench: the recorder's and renderer's cost on the reference models, as ratios to plain runs."""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import platform
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import torch

import tracer
from tracer.record.module_hooks import EveryModuleTagger
from tracer.record.native import loader as native

from . import focused
from .measure import Samples, run_interleaved
from .memory import peak_memory
from .models import SCALING_LAYERS, batch, count_nodes, loss, small_stack, transformer
from .phases import phase_account
from .render_suite import explorer_suite, render_suite
from .training_loop import print_training_loop, training_loop

RESULTS = Path(__file__).with_name("results.json")


def recording_suite(repeats: int, with_torchlens: bool) -> dict[str, Any]:
    """Backward with each capture vs plain backward; forward+backward with the module view (and torchlens)."""
    model, x = transformer(), batch()
    nodes = count_nodes(loss(model, x))

    def fresh_loss() -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        return loss(model, x)

    def zero() -> None:
        model.zero_grad(set_to_none=True)

    def module_view(_: object) -> None:
        with tracer.record(model=model):
            torch.autograd.backward(loss(model, x))

    def tags_only(_: object) -> None:  # torch's global module hooks tagging every node, nothing recorded
        with EveryModuleTagger():
            torch.autograd.backward(loss(model, x))

    def every_module(_: object) -> None:  # what `gradtrace run` does: record(modules=True)
        with tracer.record(modules=True):
            torch.autograd.backward(loss(model, x))

    def forward_recorded(_: object) -> None:  # what tracer.why and `gradtrace why` do: record(forward=True)
        with tracer.record(forward=True):
            torch.autograd.backward(loss(model, x))

    def recorded(capture: Any, read: bool) -> Any:
        # record() builds each Trace when .traces is first read: "recorded" is what a training loop pays per
        # step, "+ trace read" adds building the Trace (what tracer.trace(), which returns it, costs).
        def run(y: torch.Tensor) -> None:
            with tracer.record(capture=capture) as rec:
                torch.autograd.backward(y)
            if read:
                assert len(rec.traces) == 1

        return run

    backward_modes: dict[str, Any] = {
        "plain backward": (fresh_loss, lambda y: torch.autograd.backward(y)),
        "capture='auto' (default)": (fresh_loss, recorded("auto", read=False)),
        "capture='auto' + trace read": (fresh_loss, recorded("auto", read=True)),
        "capture='stats' + trace read": (fresh_loss, recorded("stats", read=True)),
        "capture='full'": (fresh_loss, recorded("full", read=False)),
        "capture='full' + trace read": (fresh_loss, recorded("full", read=True)),
    }
    forward_modes: dict[str, Any] = {
        "plain forward+backward": (zero, lambda _: torch.autograd.backward(loss(model, x))),
        "module view forward+backward": (zero, module_view),
        "module tags only (global hooks)": (zero, tags_only),
        "record(modules=True) fwd+bwd": (zero, every_module),
        "record(forward=True) fwd+bwd": (zero, forward_recorded),
    }
    backward = run_interleaved(backward_modes, repeats)
    forward = run_interleaved(forward_modes, repeats)
    result: dict[str, Any] = {"nodes": nodes, "backward": _table(backward, "plain backward")}
    result["forward_backward"] = _table(forward, "plain forward+backward")
    result["phases"] = phase_account(fresh_loss, rounds=2 * repeats)
    if with_torchlens:
        result["torchlens"] = _torchlens(model, x, repeats=max(2, repeats // 3))
    return result


def _torchlens(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> dict[str, Any] | str:
    try:
        import torchlens
        from torchlens.options import CaptureOptions
    except ImportError:
        return "skipped: torchlens is not installed (pip install torchlens)"

    class WithLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return loss(self.model, inputs)

    wrapped = WithLoss()

    def full_capture(_: object) -> None:
        # unwrap_when_done: torchlens otherwise leaves torch's functions wrapped, slowing every later measurement
        log = torchlens.trace(wrapped, x, capture=CaptureOptions(backward_ready=True, unwrap_when_done=True))
        log.backward(log[-1].out)

    def zero() -> None:
        model.zero_grad(set_to_none=True)

    samples = run_interleaved(
        {
            "plain forward+backward": (zero, lambda _: torch.autograd.backward(loss(model, x))),
            "torchlens full capture": (zero, full_capture),
        },
        repeats,
    )
    return _table(samples, "plain forward+backward")


def _table(samples: dict[str, Samples], baseline: str) -> dict[str, Any]:
    base = samples[baseline]
    rows = {}
    for name, s in samples.items():
        rows[name] = {
            "wall_ms": s.median("wall") * 1000,
            "cpu_ms": s.median("cpu") * 1000,
            "wall_ratio": s.ratio_to(base, "wall"),
            "cpu_ratio": s.ratio_to(base, "cpu"),
            # the least disturbed run of each mode: on a shared machine time stolen by others only ever adds,
            # so the fastest runs' ratio scatters far less between benchmark runs than the medians' do
            "best_wall_ms": s.best("wall") * 1000,
            "best_ratio": s.best("wall") / base.best("wall"),
        }
    return rows


def scaling_suite(repeats: int) -> list[dict[str, Any]]:
    """Recording cost at about 500, 1k, 2k and 4k nodes (a smaller layer, repeated)."""
    rows = []
    for layers in SCALING_LAYERS:
        model, x = small_stack(layers)

        def fresh(model: torch.nn.Module = model, x: torch.Tensor = x) -> torch.Tensor:
            model.zero_grad(set_to_none=True)
            return loss(model, x)

        nodes = count_nodes(fresh())

        def record_only(y: torch.Tensor) -> None:
            with tracer.record():
                torch.autograd.backward(y)

        samples = run_interleaved(
            {
                "plain": (fresh, lambda y: torch.autograd.backward(y)),
                "recorded": (fresh, record_only),
                "traced": (fresh, lambda y: tracer.trace(y)),
            },
            repeats,
        )
        plain, recorded, traced = (samples[k].median() for k in ("plain", "recorded", "traced"))
        rows.append(
            {
                "layers": layers,
                "nodes": nodes,
                "plain_ms": plain * 1000,
                "recorded_ms": recorded * 1000,
                "traced_ms": traced * 1000,
                "recorded_us_per_node": (recorded - plain) / nodes * 1e6,
                "added_us_per_node": (traced - plain) / nodes * 1e6,
                "ratio": traced / plain,
            }
        )
    return rows


def profile_top(count: int = 12) -> list[str]:
    """Where the default capture's time goes: cProfile of traced backward passes, by own time."""
    model, x = transformer(), batch()
    profiler = cProfile.Profile()
    for _ in range(3):
        model.zero_grad(set_to_none=True)
        y = loss(model, x)
        profiler.enable()
        tracer.trace(y)
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(count)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("ncalls"))
    return [line.rstrip() for line in lines[start : start + count + 1]]


def _print_rows(title: str, rows: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(f"  {'':32s} {'wall ms':>9s} {'ratio':>7s} {'cpu ms':>9s} {'ratio':>7s} {'fastest':>9s} {'ratio':>7s}")
    for name, r in rows.items():
        print(
            f"  {name:32s} {r['wall_ms']:9.1f} {r['wall_ratio']:6.3f}x {r['cpu_ms']:9.1f} {r['cpu_ratio']:6.3f}x"
            f" {r['best_wall_ms']:9.1f} {r['best_ratio']:6.3f}x"
        )


def _print_phases(account: dict[str, Any]) -> None:
    plain, added = account["plain_ms"], account["added_ms"]
    print("\nwhere a recorded pass's added time goes (default capture, trace not read; medians of paired rounds)")
    print(f"  {'plain backward':32s} {plain:9.1f} ms")
    print(f"  {'added by recording':32s} {added:9.1f} ms {added / plain:+7.1%}")
    for name, ms in account["phases_ms"].items():
        print(f"    {name:30s} {ms:9.2f} ms {ms / plain:+7.1%}")


class _SectionClock:
    """How long each part of the benchmark took (it must stay within a few minutes on a small machine)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            self.seconds[name] = time.perf_counter() - started


def _focused(only: str | None, device: str, repeats: int) -> int:
    """--only / --device: the named section (both without --only) on `device`; a clean message without a GPU."""
    why = focused.no_gpu_message(device)
    if why is not None:
        print(why, file=sys.stderr)
        return 2
    torch.set_num_threads(min(2, torch.get_num_threads()))
    print(native.status())
    for name in [only] if only else list(focused.SECTIONS):
        focused.print_section(focused.TITLES[name], focused.SECTIONS[name](repeats, device))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--repeats", type=int, default=9, help="rounds of interleaved runs (medians are reported)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, no torchlens, no scaling: a smoke run")
    parser.add_argument("--no-torchlens", action="store_true", help="skip the torchlens comparison")
    parser.add_argument("--no-render", action="store_true", help="skip the rendering comparison")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"where to write the JSON (default {RESULTS})")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where to measure (cuda: capture and chain)"
    )
    parser.add_argument(
        "--only", choices=sorted(focused.SECTIONS), help="one section in paired rounds (bench/focused.py), no JSON"
    )
    args = parser.parse_args(argv)
    if args.only or args.device != "cpu":
        return _focused(args.only, args.device, 3 if args.quick else args.repeats)
    repeats = 3 if args.quick else args.repeats
    torch.set_num_threads(min(2, torch.get_num_threads()))
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
        },
        "reference": "nn.TransformerEncoder, 12 layers, d_model 256, 8 heads, ff 1024, batch 8, sequence 64, "
        "float32, CPU, training mode",
    }
    results["native"] = native.status()
    clock = _SectionClock()
    print(f"gradtrace benchmark — {results['reference']}")
    print(
        f"{repeats} interleaved rounds: times are medians, ratios the median of each round's ratio;"
        " 'fastest': each mode's fastest run, and its ratio to the plain mode's fastest"
    )
    print(results["native"])
    recording = clock.run("recording", recording_suite, repeats, with_torchlens=not (args.quick or args.no_torchlens))
    results["recording"] = recording
    print(f"\nreference graph: {recording['nodes']} backward nodes")
    _print_rows("backward pass (ratios to plain backward)", recording["backward"])
    _print_rows("forward + backward (ratios to plain forward+backward)", recording["forward_backward"])
    _print_phases(recording["phases"])
    if isinstance(recording.get("torchlens"), dict):
        _print_rows("torchlens (ratios to plain forward+backward)", recording["torchlens"])
    elif "torchlens" in recording:
        print(f"\ntorchlens: {recording['torchlens']}")
    results["memory"] = clock.run("memory", peak_memory, repeats=1 if args.quick else 3)
    print("\npeak memory of a forward+backward step, each mode in a fresh interpreter (the trace kept alive)")
    for mode, m in results["memory"].items():
        print(f"  {mode:32s} {m['peak_rss_mib']:9.0f} MiB {m['added_pct']:+6.1f}%")
    if not args.quick:
        results["scaling"] = clock.run("scaling", scaling_suite, max(3, repeats // 2))
        print("\nscaling (default capture, smaller layers)")
        print(
            f"  {'nodes':>6s} {'plain ms':>9s} {'recorded ms':>12s} {'µs/node':>8s} {'+ read ms':>10s} "
            f"{'µs/node':>8s} {'ratio':>7s}"
        )
        for r in results["scaling"]:
            print(
                f"  {r['nodes']:6d} {r['plain_ms']:9.1f} {r['recorded_ms']:12.1f} {r['recorded_us_per_node']:8.1f} "
                f"{r['traced_ms']:10.1f} {r['added_us_per_node']:8.1f} {r['ratio']:6.3f}x"
            )
    results["training_loop"] = clock.run(
        "training loop", training_loop, steps=200 if args.quick else 1000, rss_steps=1000 if args.quick else 10_000
    )
    print_training_loop(results["training_loop"])
    if not args.no_render:
        results["rendering"] = clock.run("rendering", render_suite, quick=args.quick)
        results["explorer"] = clock.run("explorer", explorer_suite)
    results["profile"] = clock.run("profile", profile_top)
    print("\nwhere the time goes (cProfile of 3 traced backward passes, default capture):")
    print("\n".join("  " + line for line in results["profile"]))
    results["seconds"] = clock.seconds
    total = sum(clock.seconds.values())
    parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in clock.seconds.items())
    print(f"\nthe benchmark took {total / 60:.1f} min: {parts}")
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
