"""`python -m tracer.native`: build the optional native recorder (tracer/record/native/) once, or say its status."""

from __future__ import annotations

import sys

from .record.native.loader import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
