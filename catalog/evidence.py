"""A rule's test evidence, by SigmaHQ's regression convention, and its evaluation against JSON samples.

A rule's `regression_tests_path` names an `info.yml`, relative to the repository's top folder:

    id: <uuid of the test>
    rule_metadata: [{id: <rule id>, title: ...}]
    regression_tests_info:
      - name: Positive Detection Test
        type: evtx            # evtx, json, ...
        provider: Microsoft-Windows-Sysmon
        match_count: 1        # events of the sample the rule must match
        path: regression_data/.../<rule id>.evtx

`read_evidence` finds and reads it (a missing or malformed one is a finding: `evidence_findings`,
run by the pipeline). `evaluate` runs the rule over the JSON samples (a `.json` entry, or the
`.json` file SigmaHQ ships next to an `.evtx`) with pySigma's SQLite backend in an in-memory
database, and counts the matching events: "matches N of expected M".
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable

import yaml

from catalog.problems import Code, Problem, Severity
from catalog.timelimit import time_limit

#: Bounds: info.yml size, a JSON sample's size, events read from one sample, seconds per evaluation.
INFO_BYTES = 64 * 1024
SAMPLE_BYTES = 4 * 1024 * 1024
SAMPLE_EVENTS = 10_000
EVALUATION_SECONDS = 5.0
_PARENT_LEVELS = 6  # how far above a rule folder the repository's top folder may be
_FIELD_LINE = re.compile(r"^regression_tests_path:", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    type: str
    provider: str | None
    match_count: int | None
    path: str  # as written in info.yml, inside the repository
    exists: bool
    json_path: str | None  # the JSON form of the sample (itself, or the .json next to it) when there is one


@dataclass(frozen=True, slots=True)
class Evidence:
    info_path: str  # as the rule writes it
    base: str  # the folder the paths are relative to (the repository's top folder)
    samples: tuple[Sample, ...]

    def file(self, relative: str) -> Path:
        return Path(self.base, *PurePosixPath(relative).parts)


@dataclass(frozen=True, slots=True)
class Evaluation:
    matched: int
    events: int
    expected: int | None


class EvidenceError(Exception):
    """The info.yml is missing or malformed (the code says which); one line for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def read_evidence(document) -> Evidence | None:
    """The test evidence of a document with a `regression_tests_path`; EvidenceError when it cannot be read."""
    info_path = document.regression_tests_path
    if not info_path:
        return None
    base = _base_of(document.source.root, info_path)
    if base is None:
        raise EvidenceError(Code.REGRESSION_INFO_MISSING, f"regression_tests_path {info_path} names no file of the repository")
    info_file = Path(base, *PurePosixPath(info_path).parts)
    if info_file.stat().st_size > INFO_BYTES:
        raise EvidenceError(Code.REGRESSION_INFO_MALFORMED, f"{info_path} is larger than {INFO_BYTES // 1024} KB")
    try:
        data = yaml.safe_load(info_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise EvidenceError(Code.REGRESSION_INFO_MALFORMED, f"{info_path} cannot be read as YAML ({' '.join(str(error).split())[:200]})") from None
    tests = data.get("regression_tests_info") if isinstance(data, dict) else None
    if not isinstance(tests, list) or not tests:
        raise EvidenceError(Code.REGRESSION_INFO_MALFORMED, f"{info_path} has no regression_tests_info list")
    samples = []
    for number, test in enumerate(tests, 1):
        if not isinstance(test, dict) or not isinstance(test.get("path"), str) or not isinstance(test.get("match_count"), int):
            raise EvidenceError(Code.REGRESSION_INFO_MALFORMED, f"{info_path}: regression_tests_info entry {number} needs a path and a whole-number match_count")
        samples.append(_sample(base, test))
    return Evidence(info_path, base, tuple(samples))


def _sample(base: str, test: dict) -> Sample:
    path = test["path"]
    exists = _inside(base, path) is not None
    json_path = path if path.lower().endswith(".json") else str(PurePosixPath(path).with_suffix(".json"))
    return Sample(str(test.get("name") or "test"), str(test.get("type") or PurePosixPath(path).suffix.lstrip(".")),
                  str(test["provider"]) if test.get("provider") else None, test["match_count"], path, exists,
                  json_path if _inside(base, json_path) is not None else None)


def _inside(base: str, relative: str) -> Path | None:
    """The file at `relative` under `base` when it is a safe relative path to a file that stays inside."""
    parts = [part for part in relative.split("/") if part not in ("", ".")]  # as PurePosixPath's parts, cheaper
    if not parts or relative.startswith(("/", "\\")) or ".." in parts or "\\" in relative or ":" in parts[0]:
        return None
    candidate = os.path.join(base, *parts)
    if not os.path.isfile(candidate):  # one stat: most paths asked for are missing, and realpath costs a stat per part
        return None
    try:
        real = Path(os.path.realpath(candidate))
    except OSError:
        return None
    return Path(candidate) if real.is_file() and real.is_relative_to(os.path.realpath(base)) else None


@functools.lru_cache(maxsize=256)
def _real_folder(root: str) -> str:
    """A rule folder's real path: asked for each rule with a regression_tests_path, of a few folders."""
    return os.path.realpath(root)


def _base_of(root: str, relative: str) -> str | None:
    """The nearest folder at or above the rule folder in which `relative` names a file."""
    folder = _real_folder(root)
    for _ in range(_PARENT_LEVELS):
        if _inside(folder, relative) is not None:
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return None


def evidence_of(documents: Iterable[tuple[str, object]]) -> tuple[dict[str, Evidence], list[Problem]]:
    """The test evidence of each (key, document) that has some, by key; and a finding for each
    document whose info.yml (or one of its samples) is missing or malformed."""
    evidence: dict[str, Evidence] = {}
    found = []
    for key, document in documents:
        try:
            read = read_evidence(document)
        except EvidenceError as error:
            found.append(_problem(document, error.code, str(error)))
            continue
        if read is None:
            continue
        evidence[key] = read
        for sample in read.samples:
            if not sample.exists:
                found.append(_problem(document, Code.REGRESSION_INFO_MISSING, f"{read.info_path}: the sample {sample.path} is not in the repository"))
    return evidence, found


def _problem(document, code: str, message: str) -> Problem:
    match = _FIELD_LINE.search(document.source.raw_text)
    line = document.source.line + document.source.raw_text.count("\n", 0, match.start()) if match else document.source.line
    return Problem(document.source.file_display, line, 1, Severity.WARNING, code, message)


def evaluator_available() -> bool:
    try:
        import sigma.backends.sqlite  # noqa: F401
    except ImportError:
        return False
    return True


def evaluate(rule_text: str, sample_file: Path, expected: int | None) -> Evaluation:
    """Run one rule (its YAML text) over one JSON sample; ValueError with a reason when it cannot."""
    from sigma.backends.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection

    events = read_events(sample_file)
    try:
        with time_limit(EVALUATION_SECONDS):
            queries = sqliteBackend().convert(SigmaCollection.from_yaml(rule_text))
            matched = _count(queries, events)
    except Exception as error:  # noqa: BLE001 - pySigma, SQLite or the time limit: it costs this evaluation only
        raise ValueError(f"cannot evaluate: {' '.join(str(error).split())[:160]}") from None
    return Evaluation(matched, len(events), expected)


class Evaluations:
    """Evaluation results remembered in the build cache by (rule text, sample content); at most
    `budget` new evaluations (each converts a rule with pySigma and fills a database)."""

    def __init__(self, cache_dir: str | os.PathLike | None, budget: int) -> None:
        self.file = Path(cache_dir) / "evidence" / "evaluations.json" if cache_dir is not None else None
        self.budget = budget
        self.known: dict[str, list | str] = {}
        self.used: dict[str, list | str] = {}
        try:
            if self.file is not None and self.file.is_file():
                self.known = dict(json.loads(self.file.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            self.known = {}

    def result(self, rule_text: str, sample_file: Path, expected: int | None) -> Evaluation | None:
        """The evaluation (None past the budget); ValueError with the reason when the rule cannot be evaluated."""
        if sample_file.stat().st_size > SAMPLE_BYTES:
            raise ValueError(f"the sample is larger than {SAMPLE_BYTES // (1024 * 1024)} MB")
        key = hashlib.sha256(rule_text.encode("utf-8", "surrogatepass") + b"\0" + sample_file.read_bytes()).hexdigest()
        found = self.known.get(key)
        if found is None:
            if self.budget <= 0:
                return None
            self.budget -= 1
            try:
                outcome = evaluate(rule_text, sample_file, expected)
                found = [outcome.matched, outcome.events]
            except ValueError as error:
                found = str(error)
        self.used[key] = found
        if isinstance(found, str):
            raise ValueError(found)
        return Evaluation(found[0], found[1], expected)

    def save(self) -> None:
        """Keep the results this build used (the others belong to rules or samples that changed)."""
        if self.file is None or self.used == self.known:
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.file.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.used), encoding="utf-8")
            os.replace(temporary, self.file)
        except OSError:
            pass  # the cache only saves time


def read_events(sample_file: Path) -> list[dict[str, object]]:
    """The events of a JSON sample (one object, a list, or one object a line), each flattened to its fields."""
    if sample_file.stat().st_size > SAMPLE_BYTES:
        raise ValueError(f"the sample is larger than {SAMPLE_BYTES // (1024 * 1024)} MB")
    text = sample_file.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
        items = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        try:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise ValueError(f"the sample is not JSON ({error})") from None
    return [_flatten(item) for item in items[:SAMPLE_EVENTS] if isinstance(item, dict)]


def _flatten(event: dict) -> dict[str, object]:
    """Every leaf value under its own name (the first wins: `Event.EventData.Image` is `Image`, as
    Sigma names fields) and under its dotted path; `#attributes` levels are skipped."""
    fields: dict[str, object] = {}

    def walk(value: object, path: list[str]) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, path if key == "#attributes" else [*path, str(key)])
        elif path:
            # booleans as Sigma rules write them ('true'), lists and the rest as their JSON text
            leaf = str(value).lower() if isinstance(value, bool) else value if isinstance(value, (int, float, str)) or value is None else json.dumps(value)
            fields.setdefault(path[-1], leaf)
            fields.setdefault(".".join(path), leaf)

    walk(event, [])
    return fields


def _count(queries: list[str], events: list[dict[str, object]]) -> int:
    """Events matched by any of the queries, in an in-memory SQLite table `logs` (pySigma's backend's default)."""
    database = sqlite3.connect(":memory:")
    try:
        database.create_function("regexp", 2, _regexp, deterministic=True)
        columns = list(dict.fromkeys(name for event in events for name in event))
        # NOCASE columns: Sigma's equality ignores case (|cased compiles to GLOB, which does not)
        database.execute("CREATE TABLE logs (rowid_ INTEGER PRIMARY KEY" + "".join(f", {_quote(name)} COLLATE NOCASE" for name in columns) + ")")
        for number, event in enumerate(events):
            names = list(event)
            database.execute(f"INSERT INTO logs (rowid_{''.join(', ' + _quote(n) for n in names)}) VALUES (?{', ?' * len(names)})",
                             [number, *event.values()])
        matched: set[int] = set()
        for query in queries:
            for _ in range(64):  # a field the rule names but no event has: add it (as null) and ask again
                try:
                    matched.update(row[0] for row in database.execute(query.replace("SELECT *", "SELECT rowid_", 1)))
                    break
                except sqlite3.OperationalError as error:
                    missing = str(error).partition("no such column: ")[2]
                    if not missing:
                        raise
                    database.execute(f"ALTER TABLE logs ADD COLUMN {_quote(missing)} COLLATE NOCASE")
        return len(matched)
    finally:
        database.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _regexp(pattern: str, value: object) -> bool:
    if value is None:
        return False
    return re.search(pattern, str(value)[:100_000]) is not None
