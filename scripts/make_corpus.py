#!/usr/bin/env python3
"""Seeded synthetic rule corpora of given shapes, for the benchmarks (never committed as data).

Shapes:

- `sigmahq`: the SigmaHQ corpus (read at run time from ../shared/corpora/sigmahq, or --source)
  SCALE times. Copy 0 is the corpus as it is; every further copy gets new ids (references between
  its rules follow), new names, titles marked with the copy number, and about half of its detection
  values changed, so copies share some indicators and not others, as related rule sets do: every
  rule gets near-copies (`--values half`, the default). With `--values own` every value is
  changed (numbers too), the same value the same way throughout a copy: each copy is a catalog of
  its own, its rules as alike as SigmaHQ's, sharing no value with the other copies.
- `keywords`: keyword-heavy rule sets, fully synthetic: SCALE x 2,532 rules of 100 to 450 values
  (domains, addresses, file names, command fragments, hashes; a quarter drawn from a pool of 150,000
  the rules share, so about 50,000 values are in two rules or more) and SCALE x 5 rules of 50,000
  SHA-256 hashes (about 3.7 MB each): about 880,000 distinct indicators at scale 1.

The same seed gives the same files, byte for byte (every file has its own generator, seeded from
the seed and the file's place, so the result does not depend on the order of the walk).

    python scripts/make_corpus.py OUTPUT --shape keywords [--scale 1] [--seed 1]
    python scripts/make_corpus.py OUTPUT --shape sigmahq --scale 4 [--values half|own] [--source ../shared/corpora/sigmahq]
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
import uuid
import zlib
from pathlib import Path
from typing import Callable

import yaml

DEFAULT_SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "sigmahq"
KEYWORD_RULES = 2_532  # per unit of scale
GIANT_RULES = 5  # per unit of scale: rules of GIANT_VALUES hashes
GIANT_VALUES = 50_000
SHARED_POOL = 150_000  # values that keyword rules draw on together (feeds overlap)
SHARED_SHARE = 0.25  # of an ordinary rule's values come from the pool
RULES_PER_FOLDER = 100
#: Numbers a changed value's core (the number added to it), or None to keep the value.
Mark = Callable[[str], "int | None"]
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


def file_random(seed: int, *place: object) -> random.Random:
    return random.Random(":".join(str(part) for part in (seed, *place)))


# --- SigmaHQ-like -------------------------------------------------------------------------------


def make_sigmahq(output: Path, scale: int, seed: int, source: Path, values: str = "half") -> int:
    """SCALE copies of the corpus under output/copy-N/; returns the number of files written."""
    files = sorted(path for path in source.rglob("*") if path.suffix in (".yml", ".yaml") and path.is_file())
    if not files:
        raise SystemExit(f"no rules under {source}")
    written = 0
    for copy in range(scale):
        target = output / f"copy-{copy}"
        for path in files:
            relative = path.relative_to(source)
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            if copy == 0:
                shutil.copyfile(path, destination)
            else:
                text = path.read_text(encoding="utf-8", errors="replace")
                destination.write_text(variant(text, copy, file_random(seed, copy, relative.as_posix()), seed, values), encoding="utf-8")
            written += 1
    return written


def variant(text: str, copy: int, rng: random.Random, seed: int, values: str = "half") -> str:
    """Copy `copy` of one rule file: new ids, names and titles, and its values changed: about half of
    them at random (`half`), or all of them, each value the same way throughout the copy (`own`)."""
    text = _UUID.sub(lambda match: str(uuid.UUID(int=file_random(seed, copy, match.group(0).lower()).getrandbits(128), version=4)), text)
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return text  # kept as written (ids already renamed): the catalog reports it as the original
    for document in documents:
        if isinstance(document, dict):
            _rename(document, copy, _random_mark(rng) if values == "half" else _value_mark(seed, copy))
    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True, width=1000)


def _rename(document: dict, copy: int, mark: Mark) -> None:
    if isinstance(document.get("title"), str):
        document["title"] = f"{document['title']} (copy {copy})"
    if isinstance(document.get("name"), str):
        document["name"] = f"{document['name']}_copy{copy}"
    for body_key in ("correlation", "filter"):
        body = document.get(body_key)
        if isinstance(body, dict) and isinstance(body.get("rules"), list):
            body["rules"] = [item if _UUID.fullmatch(str(item)) else f"{item}_copy{copy}" for item in body["rules"]]
    for key in ("detection", "filter"):
        if isinstance(document.get(key), dict):
            document[key] = _changed_values(document[key], copy, mark)


def _changed_values(value: object, copy: int, mark: Mark) -> object:
    """The values `mark` numbers changed: a text gets the number added (wildcards at the end kept in
    place), an integer becomes another one (the copy and the number appended to its digits)."""
    if isinstance(value, dict):
        return {key: value[key] if key in ("condition", "timeframe", "rules") else _changed_values(value[key], copy, mark) for key in value}
    if isinstance(value, list):
        return [_changed_values(item, copy, mark) for item in value]
    if isinstance(value, str) and value.rstrip("*"):
        core = value.rstrip("*")
        number = mark(core)
        if number is not None:
            return f"{core}_{copy}{number:03d}{value[len(core):]}"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        number = mark(str(value))
        if number is not None:
            return value * 10_000 + copy * 1_000 + number  # distinct values stay distinct, copies apart
    return value


def _random_mark(rng: random.Random) -> Mark:
    """About half of the values, each marked at random."""
    return lambda core: rng.randrange(1000) if rng.random() < 0.5 else None


def _value_mark(seed: int, copy: int) -> Mark:
    """Every value, marked by what it is (case aside, as the index compares): rules sharing a value
    in the source still share it in the copy, and copies share none."""
    return lambda core: zlib.crc32(f"{seed}:{copy}:{core.lower()}".encode()) % 1000


# --- keyword-heavy ------------------------------------------------------------------------------

_WORDS = ("update", "cloud", "secure", "cdn", "mail", "portal", "sync", "data", "login", "static", "api", "files")
_TLDS = ("com", "net", "org", "info", "xyz", "top", "ru", "io")


def indicator(rng: random.Random) -> str:
    """One indicator value of a random kind, as threat-intelligence keyword rules list them."""
    kind = rng.randrange(6)
    if kind == 0:
        return f"{rng.choice(_WORDS)}-{rng.getrandbits(32):08x}.{rng.choice(_WORDS)}.{rng.choice(_TLDS)}"
    if kind == 1:
        return f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if kind == 2:
        return f"\\{rng.choice(_WORDS)}{rng.getrandbits(24):06x}.{rng.choice(('exe', 'dll', 'ps1', 'bat', 'vbs'))}"
    if kind == 3:
        return f"{rng.choice(_WORDS)} -{rng.choice(('enc', 'nop', 'w hidden', 'c'))} {rng.getrandbits(48):012x}"
    if kind == 4:
        return f"{rng.getrandbits(128):032x}"
    return f"{rng.getrandbits(256):064x}"


def keyword_rule(number: int, values: list[str], rng: random.Random) -> str:
    rule_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    lines = [
        f"title: Indicators of campaign {number:05d}",
        f"id: {rule_id}",
        "status: experimental",
        f"description: Synthetic keyword rule {number} of a threat-intelligence feed ({len(values):,} values).",
        "author: make_corpus.py",
        "date: 2024-01-01",
        f"tags:\n    - attack.t{1000 + number % 600:04d}",
        f"logsource:\n    product: {rng.choice(('windows', 'linux', 'proxy', 'dns'))}",
        "detection:",
        "    keywords:",
    ]
    lines += [f"        - '{value}'" for value in values]
    lines += ["    condition: keywords", "level: high", ""]
    return "\n".join(lines)


def make_keywords(output: Path, scale: int, seed: int) -> int:
    """SCALE x (KEYWORD_RULES + GIANT_RULES) rules under output/group-NNN/; returns the count."""
    pool_rng = file_random(seed, "pool")
    pool = [indicator(pool_rng) for _ in range(SHARED_POOL)]
    total = scale * (KEYWORD_RULES + GIANT_RULES)
    giants = {round(index * total / (scale * GIANT_RULES)) for index in range(scale * GIANT_RULES)}
    for number in range(total):
        rng = file_random(seed, "rule", number)
        if number in giants:
            values = [f"{rng.getrandbits(256):064x}" for _ in range(GIANT_VALUES)]
        else:
            values = [rng.choice(pool) if rng.random() < SHARED_SHARE else indicator(rng) for _ in range(rng.randrange(100, 452))]
        values = list(dict.fromkeys(values))
        folder = output / f"group-{number // RULES_PER_FOLDER:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"campaign_{number:05d}.yml").write_text(keyword_rule(number, values, rng), encoding="utf-8")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="folder to write the rules into (must not exist, or be empty)")
    parser.add_argument("--shape", choices=("sigmahq", "keywords"), required=True)
    parser.add_argument("--scale", type=int, default=1, help="how many times the shape's size (default 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the SigmaHQ checkout (shape sigmahq)")
    parser.add_argument("--values", choices=("half", "own"), default="half",
                        help="shape sigmahq: each copy changes about half of its values at random (half, the default: every rule "
                             "gets near-copies), or all of them, the same value the same way (own: catalogs of their own)")
    arguments = parser.parse_args(argv)
    if arguments.scale < 1:
        parser.error("--scale must be at least 1")
    if arguments.output.exists() and any(arguments.output.iterdir()):
        parser.error(f"{arguments.output} is not empty")
    arguments.output.mkdir(parents=True, exist_ok=True)
    if arguments.shape == "sigmahq":
        count = make_sigmahq(arguments.output, arguments.scale, arguments.seed, arguments.source, arguments.values)
    else:
        count = make_keywords(arguments.output, arguments.scale, arguments.seed)
    print(f"{count:,} rule files written to {arguments.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
