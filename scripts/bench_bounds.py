#!/usr/bin/env python3
"""Bounded at any size (issue 10): the large corpus shapes against their targets.

Generates, with scripts/make_corpus.py into a temporary folder, the keyword-heavy shape and
SigmaHQ at 4x (and takes SigmaHQ itself), builds each catalog site in a fresh `mkdocs build`
subprocess, and prints wall time, peak memory, output size, file count and the largest HTML
page, each against its target (PASS/FAIL). The figures are printed, never asserted.

    python scripts/bench_bounds.py [--corpus ../shared/corpora/sigmahq] [--work DIR] [--only keywords,sigmahq,sigmahq-4x]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_site import FOLDERS, REPO, Build, build, catalog_project  # noqa: E402

MB = 1e6


@dataclass(frozen=True)
class Target:
    """Upper bounds of one shape's build (None: not a target for that shape)."""

    rss_mb: float | None = None
    wall_s: float | None = None
    output_mb: float | None = None
    page_mb: float | None = None


#: The targets of issue 10, per shape.
TARGETS = {
    "keywords": Target(rss_mb=1000, wall_s=120, output_mb=1000, page_mb=1),
    "sigmahq": Target(rss_mb=300),
    "sigmahq-4x": Target(rss_mb=1000),
}


def largest_page(site: Path) -> tuple[int, str]:
    best = (0, "")
    for directory, _, names in os.walk(site):
        for name in names:
            if name.endswith(".html"):
                path = os.path.join(directory, name)
                size = os.path.getsize(path)
                if size > best[0]:
                    best = (size, os.path.relpath(path, site))
    return best


def corpus(shape: str, work: Path, sigmahq: Path) -> list[Path]:
    """The rule folders of one shape (generated under `work`, SigmaHQ taken as it is)."""
    if shape == "sigmahq":
        return [sigmahq / folder for folder in FOLDERS if (sigmahq / folder).is_dir()]
    target = work / f"corpus-{shape}"
    if not target.exists():
        arguments = ["--shape", "keywords"] if shape == "keywords" else ["--shape", "sigmahq", "--scale", "4", "--source", str(sigmahq)]
        subprocess.run([sys.executable, str(REPO / "scripts/make_corpus.py"), str(target), *arguments, "--seed", "1"], check=True)
    return [target]


def verdict(value: float, bound: float | None) -> str:
    if bound is None:
        return ""
    return f"  target {bound:,.0f}: {'PASS' if value <= bound else 'FAIL'}"


def report(shape: str, result: Build, page: tuple[int, str]) -> bool:
    target = TARGETS[shape]
    lines = [
        ("wall time (s)", result.wall, target.wall_s),
        ("peak memory (MB)", result.rss_mb, target.rss_mb),
        ("output (MB)", result.mb, target.output_mb),
        ("largest HTML page (MB)", page[0] / MB, target.page_mb),
    ]
    print(f"\n{shape}: {result.files:,} files; largest page {page[1]}; CPU time {result.cpu:.1f} s "
          f"(load average {os.getloadavg()[0]:.1f}: wall time on a shared machine overstates)")
    ok = True
    for label, value, bound in lines:
        print(f"  {label:<24}{value:>12,.2f}{verdict(value, bound)}")
        ok &= bound is None or value <= bound
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared/corpora/sigmahq")
    parser.add_argument("--work", type=Path, help="working folder (default: a new temporary folder, removed afterwards)")
    parser.add_argument("--only", default=",".join(TARGETS), help="comma-separated shapes (default: all)")
    arguments = parser.parse_args()
    shapes = [shape for shape in arguments.only.split(",") if shape]
    for shape in shapes:
        if shape not in TARGETS:
            parser.error(f"unknown shape {shape!r} (one of {', '.join(TARGETS)})")
    work = arguments.work or Path(tempfile.mkdtemp(prefix="bench-bounds-"))
    all_ok = True
    try:
        for shape in shapes:
            if shape.startswith("sigmahq") and not arguments.corpus.is_dir():
                print(f"\n{shape}: skipped (no SigmaHQ corpus at {arguments.corpus})")
                continue
            project = work / f"project-{shape}"
            config = catalog_project(project, corpus(shape, work, arguments.corpus))
            result = build(shape, config, project / "site")
            all_ok &= report(shape, result, largest_page(result.site))
            shutil.rmtree(project / "site", ignore_errors=True)
    finally:
        if arguments.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\nall targets met" if all_ok else "\nsome targets missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
