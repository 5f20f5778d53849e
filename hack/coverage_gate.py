#!/usr/bin/env python3
"""Fails when a module of the operator is covered less than the floor by the unit tests alone.

  coverage_gate.py COVERAGE_JSON [--floor 85]

The kopf wiring (handlers.py) and the entry point (__main__.py) are left to the e2e suite: they do
nothing but hand events to code that the unit tests drive.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXEMPT = ("vmrole_operator/handlers.py", "vmrole_operator/__main__.py")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("report", type=Path)
    parser.add_argument("--floor", type=float, default=85.0)
    args = parser.parse_args()
    files = json.loads(args.report.read_text())["files"]
    low = {
        path: data["summary"]["percent_covered"]
        for path, data in files.items()
        if not path.endswith(EXEMPT) and data["summary"]["percent_covered"] < args.floor
    }
    for path, percent in sorted(low.items()):
        print(f"coverage: {path} {percent:.1f}% < {args.floor:.0f}%", file=sys.stderr)
    if not files:
        print("coverage: the report lists no files", file=sys.stderr)
        return 1
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
