"""Arguments of `confidant bench` (the measurements live in sibling modules)."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true")


def run_bench(args) -> int:  # replaced by the benchmark work (issue 4)
    print("confidant bench: not available yet")
    return 2
