"""Counts of how a Sigma corpus's attack.* tags resolve against an ATT&CK snapshot or bundle.

    .venv/bin/python scripts/attack_report.py [--data BUNDLE] [--corpus DIR]

--data defaults to the shipped snapshot; --corpus to ../shared/corpora/sigmahq.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog.attack import load_knowledge, map_tags  # noqa: E402

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "sigmahq"
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def rule_tags(corpus: Path) -> list[tuple[Path, list[str]]]:
    """The tags of every document of every .yml file (multi-document files included)."""
    found = []
    for path in sorted(corpus.rglob("*.yml")):
        try:
            documents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=Loader))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        tags = [str(t) for d in documents if isinstance(d, dict) for t in (d.get("tags") or [])]
        found.append((path, tags))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="STIX bundle (.json/.json.xz/.json.gz) or cti dir; default: shipped snapshot")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()

    kb = load_knowledge(args.data)
    rules = rule_tags(args.corpus)
    started = time.perf_counter()
    mappings = [map_tags(tags, kb) for _, tags in rules]
    elapsed = time.perf_counter() - started

    counts: Counter[str] = Counter()
    techniques: Counter[str] = Counter()
    for (_, tags), mapping in zip(rules, mappings):
        counts["attack tags"] += sum(1 for t in tags if t.lower().startswith("attack."))
        for mapped in mapping.techniques:
            techniques[mapped.technique.id] += 1
            counts["technique tags resolved"] += 1
            counts["revoked -> replaced"] += mapped.replaced is not None
            counts["deprecated"] += mapped.deprecated
            counts["derived placements"] += mapped.derived
        counts["unknown technique tags"] += len(mapping.unknown_techniques)
        counts["tactic rows"] += len(mapping.rows)
        counts["groups"] += len(mapping.groups)
        counts["software"] += len(mapping.software)
        counts["other tags"] += len(mapping.other_tags)
        for finding in mapping.findings:
            counts[f"finding {finding.code}"] += 1

    print(f"{kb.label} (sha256 {kb.source_hash[:12]}): {len(kb.tactics)} tactics, {len(kb.all_techniques)} techniques")
    print(f"{len(rules)} rule files from {args.corpus}; mapped in {elapsed * 1000:.0f} ms")
    width = max(map(len, counts))
    for key in sorted(counts, key=lambda k: (k.startswith("finding"), k)):
        print(f"  {key:<{width}}  {counts[key]:>6}")
    print(f"  distinct techniques: {len(techniques)}")
    unknown = Counter(t for m in mappings for t in m.unknown_techniques)
    if unknown:
        print("  unknown techniques:", ", ".join(f"{t} x{n}" for t, n in unknown.most_common()))
    tactic_findings = Counter(f.tag.lower() for m in mappings for f in m.findings if f.code == "unknown-tactic")
    if tactic_findings:
        print("  unknown tactic tags:", ", ".join(f"{t} x{n}" for t, n in tactic_findings.most_common()))
    replaced = Counter(f"{m.replaced}->{m.technique.id}" for mp in mappings for m in mp.techniques if m.replaced)
    if replaced:
        print("  replacements:", ", ".join(f"{t} x{n}" for t, n in replaced.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
