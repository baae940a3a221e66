"""Every case of the tutorials (tests/cases.py) as one script: one backward pass per case, in order.

Usage: python tests/scripts/tutorial_cases.py [CASE_ID | TUTORIAL ...]   (none: every case)
"""

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[2]))  # the repository root, for tests.cases

from tests.cases import CASES, Case


def run(case: Case) -> None:
    leaves = case.leaves()
    x, a = leaves.get("x"), leaves.get("a")  # local variables, so the recorded leaves carry the case's names
    y = case.forward(leaves)
    y.backward(case.seed(y))
    print(case.id, {name: t.grad.tolist() for name, t in (("x", x), ("a", a)) if t is not None})


if __name__ == "__main__":
    wanted = sys.argv[1:]
    for case in CASES:
        if not wanted or case.id in wanted or case.tutorial in wanted:
            run(case)
