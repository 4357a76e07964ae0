#!/usr/bin/env python3
"""Similar rules benchmark: the similarity step (catalog.similarity: every rule's similar rules and
the likely-duplicate clusters) on the SigmaHQ corpus and on it 4 times over (scripts/make_corpus.py's
`sigmahq` shape: copies with new ids and about half their values changed); prints the time of each,
their ratio, and the 10 best-scoring pairs of the corpus with their files. Each is run --repeat
times; the least time counts (the machine is shared: the least disturbed run).

    python scripts/bench_similarity.py [--corpus ../shared/corpora/sigmahq] [--top 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from catalog.pipeline import build_catalog, collector_paused  # noqa: E402
from catalog.similarity import Similarity  # noqa: E402


def measure(root: Path, repeat: int) -> tuple[float, Similarity, object]:
    """The least time of `repeat` runs (the one the machine's other work disturbed least)."""
    catalog = build_catalog([root])
    times = []
    for _ in range(repeat):
        with collector_paused():  # as in the site build, which pauses the collector throughout
            started = time.perf_counter()
            similarity = Similarity(catalog)
            similarity.all()
            clusters = similarity.clusters()
            times.append(time.perf_counter() - started)
    print(f"{root}: {len(catalog.rules)} rules, similarity {min(times):.3f} s (least of {repeat}; median {statistics.median(times):.3f} s), "
          f"{len(clusters)} likely-duplicate clusters")
    return min(times), similarity, catalog


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared/corpora/sigmahq")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="runs per corpus; the least time counts (default 5)")
    arguments = parser.parse_args()
    if not arguments.corpus.is_dir():
        print(f"no corpus at {arguments.corpus}: nothing to measure", file=sys.stderr)
        return 0
    one, similarity, catalog = measure(arguments.corpus, arguments.repeat)
    by_slug = catalog.by_slug()
    for first, second, score in similarity.top_pairs(arguments.top):
        same = "same log source" if similarity.compare(first, second).same_logsource else "other log source"
        print(f"  {score:.3f} {by_slug[first].document.source.file_display}  ~  {by_slug[second].document.source.file_display} ({same})")
    with tempfile.TemporaryDirectory(prefix="bench-similarity-") as work:
        subprocess.run([sys.executable, str(REPO / "scripts/make_corpus.py"), work + "/4x", "--shape", "sigmahq", "--scale", "4",
                        "--source", str(arguments.corpus)], check=True, stdout=subprocess.DEVNULL)
        four, _, _ = measure(Path(work) / "4x", arguments.repeat)
    print(f"4x / 1x: {four / one:.2f} (linear: at most 4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
