#!/usr/bin/env python3
"""Similar rules benchmark: the similarity step (catalog.similarity: every rule's similar rules and
the likely-duplicate clusters) on the SigmaHQ corpus and on larger corpora of its shape
(scripts/make_corpus.py's `sigmahq` shape):

- "own" at 2x and 4x (--scales): catalogs of copies of SigmaHQ, every value of a copy changed
  the same way, numbers included (each copy's rules as alike as SigmaHQ's, and no value shared
  between copies): a catalog two and four times as large. The step is to grow at most linearly
  here: the time per rule stays flat, each doubling of the catalog about doubles the time.
- "half" at 4x: copies with about half of their values changed at random, so every rule gains
  three near-copies: the similar pairs to find (the step's output) grow far more than 4 times.

Each prints the time, the time per rule, its ratio to SigmaHQ's, and the work the step did
(candidates scored per rule, similar rules found, and the time per similar rule found). A linear
yardstick is measured on the same data: one pass hashing every indicator key once, the least any
step reading every indicator does. On a machine whose caches hold less of a larger catalog, that
pass alone grows more than the catalog; the step's ratio is to be read against it. Then the 10
best-scoring pairs of SigmaHQ with their files. Each time is the least of --repeat runs (the
machine is shared: the least disturbed run).

    python scripts/bench_similarity.py [--corpus ../shared/corpora/sigmahq] [--top 10] [--repeat 5] [--scales 2 4]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from catalog.pipeline import build_catalog, collector_paused  # noqa: E402
from catalog.similarity import Similarity  # noqa: E402


@dataclass
class Measured:
    seconds: float
    yardstick: float  # one pass hashing every indicator key
    scored: float  # candidates scored per rule
    found: int  # similar rules found, all rules together
    similarity: Similarity
    catalog: object


def measure(root: Path, repeat: int) -> Measured:
    """The least time of `repeat` runs (the one the machine's other work disturbed least)."""
    catalog = build_catalog([root])
    indicators = [entry.analysis.indicators for entry in catalog.rules if entry.analysis is not None]
    times, yardsticks = [], []
    similarity = None
    for _ in range(repeat):
        with collector_paused():  # as in the site build, which pauses the collector throughout
            similarity = None  # the last run's is freed before the clock starts
            started = time.perf_counter()
            similarity = Similarity(catalog)
            found = similarity.all()
            clusters = similarity.clusters()
            times.append(time.perf_counter() - started)
            started = time.perf_counter()
            for rule in indicators:
                for indicator in rule:
                    hash(indicator.key)
            yardsticks.append(time.perf_counter() - started)
    measured = Measured(min(times), min(yardsticks), similarity.scored_per_rule(), sum(map(len, found.values())), similarity, catalog)
    print(f"{root.name}: {len(catalog.rules)} rules, similarity {measured.seconds:.3f} s ({measured.seconds / len(catalog.rules) * 1e6:.1f} µs per rule; least of {repeat}; median "
          f"{statistics.median(times):.3f} s), {measured.scored:.2f} candidates scored per rule, {measured.found} similar rules found, "
          f"{len(clusters)} likely-duplicate clusters; yardstick {measured.yardstick * 1000:.1f} ms")
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared/corpora/sigmahq")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="runs per corpus; the least time counts (default 5)")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4], help="sizes of the \"own\" corpora, in SigmaHQs (default 2 4)")
    arguments = parser.parse_args()
    if not arguments.corpus.is_dir():
        print(f"no corpus at {arguments.corpus}: nothing to measure", file=sys.stderr)
        return 0
    one = measure(arguments.corpus, arguments.repeat)
    by_slug = one.catalog.by_slug()
    for first, second, score in one.similarity.top_pairs(arguments.top):
        same = "same log source" if one.similarity.compare(first, second).same_logsource else "other log source"
        print(f"  {score:.3f} {by_slug[first].document.source.file_display}  ~  {by_slug[second].document.source.file_display} ({same})")
    for values, scale in [("own", scale) for scale in arguments.scales] + [("half", 4)]:
        with tempfile.TemporaryDirectory(prefix="bench-similarity-") as work:
            corpus = Path(work) / f"{scale}x-{values}"
            subprocess.run([sys.executable, str(REPO / "scripts/make_corpus.py"), str(corpus), "--shape", "sigmahq",
                            "--scale", str(scale), "--values", values, "--source", str(arguments.corpus)], check=True, stdout=subprocess.DEVNULL)
            larger = measure(corpus, arguments.repeat)
        print(f"{scale}x ({values}) / 1x: time {larger.seconds / one.seconds:.2f} (linear: at most {scale}); "
              f"yardstick {larger.yardstick / one.yardstick:.2f}; "
              f"time per yardstick {larger.seconds / larger.yardstick / (one.seconds / one.yardstick):.2f} (linear: at most 1); "
              f"similar rules found {larger.found / one.found:.2f}; time per similar rule found "
              f"{larger.seconds / larger.found / (one.seconds / one.found):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
