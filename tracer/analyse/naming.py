"""What the text calls a seed or a node, each spelling written once (the bare 'output' is Seed.output_name).

Several spellings exist because the pictures, tooltips and reports have used them from the start and the golden
files hold them: 'output0' in reports, 'output 0' in pictures, 'seed 0' where the module view names a sender.
"""

from __future__ import annotations

from ..model.records import Seed, Step


def seed_label(seed: Seed) -> str:
    """What reports call a seed's output: its variable name, else 'output<k>' ('output0')."""
    return seed.name or f"output{seed.index}"


def output_title(seed: Seed) -> str:
    """What pictures and pages call a seed's output: its variable name, else 'output <k>' ('output 0')."""
    return seed.name or f"output {seed.index}"


def seed_ref(seed: Seed) -> str:
    """A seed as the sender of a gradient: 'seed y', or 'seed 0' when the output has no name."""
    return f"seed {seed.name or seed.index}"


def step_ref(step: Step) -> str:
    """How other elements refer to a node: 'step 3', or 'node 7' for one that did not run."""
    return f"step {step.id}" if step.executed else f"node {step.id}"


def step_label(step: Step) -> str:
    """A node with its name: 'step 3 PowBackward0', or 'node 7 MulBackward0' for one that did not run."""
    return f"{step_ref(step)} {step.name}"
