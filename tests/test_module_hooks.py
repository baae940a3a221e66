"""Module tags without code changes: record(modules=True) and `gradtrace run` tag every nn.Module's forward through
torch's global module hooks; tagging changes nothing; partial tagging is detected and said."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch.nn.modules import module as torch_module

import tracer
from tests.cli_helpers import invoke
from tests.module_models import Block
from tracer.analyse import module_view
from tracer.analyse.module_coverage import coverage
from tracer.model.errors import DrawingOptionError

NANOGPT = '''
"""A nanoGPT-style model and one training step; nothing of gradtrace in it."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab=32, block_size=8, n_layer=2, n_head=2, n_embd=16):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, n_embd),
            wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd),
        ))
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying, as nanoGPT does

    def forward(self, idx, targets):
        pos = torch.arange(idx.size(1))
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


torch.manual_seed(0)
model = GPT()
idx = torch.randint(0, 32, (2, 8))
targets = torch.randint(0, 32, (2, 8))
loss = model(idx, targets)
loss.backward()
print("loss", loss.item())
'''


def test_gradtrace_run_tags_an_unmodified_script_one_box_per_block(tmp_path: Path) -> None:
    script = tmp_path / "nanogpt.py"
    script.write_text(textwrap.dedent(NANOGPT), encoding="utf-8")
    out = tmp_path / "out"
    result = invoke("run", script, "-o", out, "--view", "modules", "-f", "svg,json,html")
    assert result.exit_code == 0, result.output
    trace = tracer.load(out / "nanogpt.pass1.json")
    assert trace.modules["model.transformer.h.0"] == "Block"
    view = module_view.build(trace)  # the default depth: the repeated blocks
    paths = [b.path for b in view.boxes]
    assert sorted(p for p in paths if p.startswith("model.transformer.h.")) == [
        "model.transformer.h.0",
        "model.transformer.h.1",
    ]
    svg = (out / "nanogpt.pass1.svg").read_text(encoding="utf-8")
    assert "model.transformer.h.0" in svg and "model.transformer.h.1" in svg
    assert "partial module tags" not in svg
    page = (out / "nanogpt.pass1.html").read_text(encoding="utf-8")  # --view modules: the module page
    assert 'class="gt-modules"' in page and "model.transformer.h.1" in page
    # every parameter's node knows its module (the tied embedding: the module that used it last in backward)
    assert all(trace.node(leaf.node).module for leaf in trace.leaves.values() if leaf.node is not None)

    plain = invoke("run", script, "-o", tmp_path / "plain", "--no-modules", "-f", "json,html")
    assert plain.exit_code == 0, plain.output
    assert not any(n.module for n in tracer.load(tmp_path / "plain" / "nanogpt.pass1.json").nodes)
    explorer = (tmp_path / "plain" / "nanogpt.pass1.html").read_text(encoding="utf-8")  # > 30 steps, no tags
    assert 'class="gt-x"' in explorer and explorer.count("<svg") == 1 and len(explorer) < 2_000_000


def _model() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return torch.nn.Sequential(Block(), torch.nn.ReLU(), Block()), torch.randn(4, 3, requires_grad=True)


def test_tagging_changes_nothing_and_user_hooks_still_run(hooks: str) -> None:
    model, x = _model()
    calls: list[str] = []
    model[0].register_forward_hook(lambda m, a, o: calls.append("forward"))
    model[0].register_forward_pre_hook(lambda m, a: calls.append("pre"))
    out = model(x).pow(2).sum()
    out.backward()
    expected = [p.grad.clone() for p in model.parameters()] + [x.grad.clone()]
    assert calls == ["pre", "forward"]
    model.zero_grad(set_to_none=True)
    x.grad = None
    with tracer.record(modules=True) as rec:
        again = model(x).pow(2).sum()
        again.backward()
    assert torch.equal(again, out)
    got = [p.grad for p in model.parameters()] + [x.grad]
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))  # bit for bit
    assert calls == ["pre", "forward"] * 2
    assert not torch_module._global_forward_hooks and not torch_module._global_forward_pre_hooks
    (trace,) = rec.traces
    assert trace.modules == {
        "model": "Sequential",
        "model.0": "Block",
        "model.0.inner": "Linear",
        "model.1": "ReLU",
        "model.2": "Block",
        "model.2.inner": "Linear",
    }
    tags = {n.module for n in trace.nodes}
    assert {"model.0", "model.0.inner", "model.1", "model.2", "model.2.inner"} <= tags
    assert coverage(trace).explain().startswith(f"{coverage(trace).tagged} of {len(trace.nodes)} backward nodes")
    with tracer.record(model=model) as by_model:
        model(x).pow(2).sum().backward()
    assert [n.module for n in by_model.traces[0].nodes] == [n.module for n in trace.nodes]  # the same tags


def test_hooks_come_off_when_the_forward_or_the_block_raises() -> None:
    class Boom(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("boom")

    model, x = _model()
    with pytest.raises(ValueError, match="boom"), tracer.record(modules=True):
        torch.nn.Sequential(model, Boom())(x)
    assert not torch_module._global_forward_hooks and not torch_module._global_forward_pre_hooks
    with pytest.raises(ValueError, match="modules must be True or False"):
        tracer.record(modules="yes")  # type: ignore[arg-type]


def test_partial_tagging_is_detected_and_said(tmp_path: Path) -> None:
    torch.manual_seed(0)
    seq = torch.nn.Sequential(*[Block() for _ in range(6)])
    x = torch.randn(4, 3, requires_grad=True)
    h = seq[:3](x)  # half the forward before the block opens
    with tracer.record(model=seq) as rec:
        seq[3:](h).sum().backward()
    (trace,) = rec.traces
    found = coverage(trace)
    assert found.partial and 0 < found.tagged < len(trace.nodes)
    assert set(found.untagged_params) == {
        f"seq.{i}.{p}" for i in range(3) for p in ("scale", "inner.weight", "inner.bias")
    }
    said = found.explain()
    assert f"{found.tagged} of {len(trace.nodes)} backward nodes carry a module tag" in said
    assert "ran outside the module hooks" in said and "tracer.record(modules=True)" in said
    assert "⚠ partial module tags" in trace.to_dot(view="modules")  # the picture says it under its title
    page = trace.save(tmp_path / "p.html", view="full", max_frames=1).read_text(encoding="utf-8")
    assert 'class="gt-x-warn"' in page and "ran outside the module hooks" in page

    h = seq(x)  # the whole forward outside: no tags at all, and the reason
    with tracer.record(model=seq) as rec:
        h.sum().backward()
    with pytest.raises(DrawingOptionError, match="no module's forward ran inside the block"):
        rec.traces[0].to_dot(view="modules")


def test_compiling_a_module_inside_a_tagging_block_says_nothing_more_than_without() -> None:
    """torch.compile(module) warns when global module hooks exist; ours are gradtrace's, so the user sees nothing,
    and the filter is gone when the block closes."""
    model = torch.nn.Linear(2, 2)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        compiled = torch.compile(model, backend="eager")
        with tracer.record(modules=True):
            compiled(torch.ones(1, 2)).sum().backward()
        ours = [f for f in warnings.filters if f[1] is not None and "global hooks" in f[1].pattern]
        compiled(torch.ones(1, 2))  # after the block: no hook of ours left for torch to warn about
    assert not [w for w in seen if "global hooks" in str(w.message)], [str(w.message) for w in seen]
    assert not ours
