"""Entry point: python -m edge_workloads (see cli.py and docs/workloads.md)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
