"""Time `load_knowledge`: cold (no disk cache), disk-cached (new process), and in-process cached.

    .venv/bin/python scripts/bench_attack.py [--data BUNDLE] [--repeat N]

Each cold / disk-cached measurement runs in a fresh interpreter, so attackcti's import and
python-stix2's parsing are counted the way a `mkdocs build` pays them. Uses a temporary cache dir.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import sys, time
sys.path.insert(0, {root!r})
started = time.perf_counter()
from catalog.attack import load_knowledge
source = {source!r}
first = load_knowledge(source)
middle = time.perf_counter()
for _ in range(100):
    load_knowledge(source)
ended = time.perf_counter()
print(middle - started, (ended - middle) / 100, first.release)
"""


def probe(source: str | None, cache: str) -> tuple[float, float, str]:
    code = PROBE.format(root=str(ROOT), source=source)
    env = {**os.environ, "CATALOG_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
    load, again, release = out.split()
    return float(load), float(again), release


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="STIX bundle or cti dir (default: the shipped snapshot)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    cold, cached, memory = [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            load, again, release = probe(args.data, cache)  # empty cache dir: attackcti parses the STIX
            cold.append(load)
            memory.append(again)
            load, again, _ = probe(args.data, cache)  # same cache dir: the JSON written above
            cached.append(load)
            memory.append(again)

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:8.2f} ms  (min {min(values) * 1000:.2f}, max {max(values) * 1000:.2f})"

    print(f"ATT&CK Enterprise v{release} from {args.data or 'the shipped snapshot'}, {args.repeat} runs, import included:")
    print(f"  cold (no disk cache)    {ms(cold)}")
    print(f"  disk cache, new process {ms(cached)}")
    print(f"  in-process cache        {ms(memory)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
