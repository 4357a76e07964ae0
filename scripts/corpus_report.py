"""Analysis figures of a Sigma corpus: rules with exclusions, exclusions, findings by code.

    PYTHONPATH=. .venv/bin/python scripts/corpus_report.py [CORPUS_DIR ...]

Run it with PYTHONPATH pointing at the checkout to measure (e.g. main, then a branch) to compare
what a change does to a real corpus. The default corpus is ../shared/corpora/sigmahq.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from catalog.attack import load_knowledge
from catalog.model import Rule
from catalog.pipeline import build_catalog

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "sigmahq"


def main(argv: list[str]) -> int:
    roots = argv or [str(DEFAULT_CORPUS)]
    catalog = build_catalog(roots, load_knowledge())
    rules = [entry for entry in catalog.entries if isinstance(entry.document, Rule)]
    with_exclusions = [entry for entry in rules if entry.analysis and entry.analysis.exclusions]
    exclusions = sum(len(entry.analysis.exclusions) for entry in with_exclusions)
    print(f"documents: {len(catalog.entries)} (rules: {len(rules)}), files: {len(catalog.files)}")
    print(f"rules with at least one exclusion: {len(with_exclusions)}")
    print(f"exclusions: {exclusions}")
    print(f"indicators: {sum(len(entry.analysis.indicators) for entry in rules if entry.analysis)}")
    print("findings by code:")
    codes = Counter((problem.code, problem.severity.value) for problem in catalog.problems)
    for (code, severity), count in sorted(codes.items()):
        print(f"  {code} ({severity}): {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
