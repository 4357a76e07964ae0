"""Benchmark: YAML parsing alone (PyYAML's C loader) against the whole analysis, on a rule corpus.

Usage: python scripts/bench_analysis.py [RULE_FOLDER ...]   (default: ../shared/corpora/sigmahq)
Prints the best of several runs (CPU time of this process, and wall time) and their ratio.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog.loader import discover  # noqa: E402
from catalog.pipeline import build_catalog  # noqa: E402

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "sigmahq"


def parse_only(paths: list[Path]) -> None:
    for path in paths:
        list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader))


def best_of(runs: int, work) -> tuple[float, float]:
    cpu, wall = [], []
    for _ in range(runs):
        gc.collect()
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        work()
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started_wall)
    return min(cpu), min(wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[DEFAULT_CORPUS])
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    files, _ = discover(arguments.folders)
    paths = [rule_file.path for rule_file in files]
    catalog = build_catalog(arguments.folders)
    print(f"corpus: {len(paths)} files, {len(catalog.entries)} documents, {len(catalog.problems)} problems")
    parse_cpu, parse_wall = best_of(arguments.runs, lambda: parse_only(paths))
    gc.disable()  # for comparison: the parse alone without the garbage collector, as the analysis runs
    quiet_cpu, quiet_wall = best_of(arguments.runs, lambda: parse_only(paths))
    gc.enable()
    full_cpu, full_wall = best_of(arguments.runs, lambda: build_catalog(arguments.folders))
    print(f"YAML parse only (C loader):          {parse_cpu:6.2f} s CPU  {parse_wall:6.2f} s wall")
    print(f"  the same with the collector off:   {quiet_cpu:6.2f} s CPU  {quiet_wall:6.2f} s wall")
    print(f"whole analysis:                      {full_cpu:6.2f} s CPU  {full_wall:6.2f} s wall")
    print(f"ratio to the parse (target <= 2.0):  {full_cpu / parse_cpu:6.2f} CPU  {full_wall / parse_wall:6.2f} wall")
    print(f"ratio to the parse, collector off:   {full_cpu / quiet_cpu:6.2f} CPU  {full_wall / quiet_wall:6.2f} wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
