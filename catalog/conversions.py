"""Each rule's queries for real SIEM backends, converted with pySigma and its installed backends.

Optional: needs `pip install 'sigma-catalog[conversions]'` (pySigma 1.x and the Splunk,
Elasticsearch and Kusto backends, the Sysmon and Windows pipelines). Nothing here reaches the
network: backends and pipelines come from the installed packages (pySigma's entry points), never
from pySigma's online plugin directory.

Conversions run in worker processes (`catalog.conversion_worker`), a chunk of rules per task, and
are cached by (rule text, target, its pipelines, the installed versions) in one file per target
under the build cache, so a build after the first, and a `mkdocs serve` rebuild, converts only
rules that changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

from catalog import conversion_worker
from catalog.conversion_worker import Conversion, ConversionSetupError, Job, Target, plugins
from catalog.model import CorrelationRule, Rule
from catalog.pipeline import Entry
from catalog.problems import Code, Problem, Severity

_SYSMON_WINDOWS = ("sysmon", "windows-logsources")
_PIPELINES = ("pysigma-pipeline-sysmon", "pysigma-pipeline-windows")
#: The targets known by name; `conversions: [splunk, lucene, esql, kusto]` in mkdocs.yml.
TARGETS = {
    "splunk": Target("splunk", "Splunk SPL", "splunk", _SYSMON_WINDOWS, ("pysigma-backend-splunk", *_PIPELINES)),
    "lucene": Target("lucene", "Elasticsearch Lucene", "lucene", ("ecs_windows",), ("pysigma-backend-elasticsearch",)),
    "esql": Target("esql", "Elasticsearch ES|QL", "esql", ("ecs_windows",), ("pysigma-backend-elasticsearch",)),
    "kusto": Target("kusto", "Microsoft KQL", "kusto", _SYSMON_WINDOWS, ("pysigma-backend-kusto", *_PIPELINES)),
}
#: Fewer jobs than this convert in this process (starting workers would cost more).
IN_PROCESS = 64
CHUNK = 48


def resolve_targets(names: Sequence[str]) -> list[Target]:
    """The targets for the names of `conversions:`; other names are installed pySigma backends
    (`eql`, or `eql:ecs_windows` with a pipeline for Windows rules)."""
    targets = []
    for name in names:
        target = TARGETS.get(name)
        if target is not None:
            for package in ("pysigma", *target.packages):
                _version(package)
        else:
            targets.append(_installed_backend(name))
            continue
        targets.append(target)
    return targets


def _installed_backend(name: str) -> Target:
    available = plugins()
    backend, _, pipeline = name.partition(":")
    if backend not in available.backends:
        raise ConversionSetupError(f"the pySigma backend '{backend}' is not installed (installed: {', '.join(sorted(available.backends)) or 'none'})")
    if pipeline and pipeline not in available.pipelines:
        raise ConversionSetupError(f"the pySigma pipeline '{pipeline}' is not installed")
    return Target(name, backend, backend, (pipeline,) if pipeline else (), (_distribution_of(available.backends[backend]),))


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        raise ConversionSetupError(f"{package} is not installed; pip install 'sigma-catalog[conversions]'") from None


def _distribution_of(backend_class) -> str:
    """The distribution that installed a backend class (its module's folder under sigma/backends)."""
    from importlib import metadata

    module = backend_class.__module__.split(".")
    folder = ("sigma", "backends", module[2]) if len(module) > 2 else None
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"] or ""
        if folder and name.lower().startswith("pysigma") and any(Path(str(file)).parts[:3] == folder for file in distribution.files or ()):
            return name
    return "pysigma"


def jobs_of(entries: Sequence[Entry]) -> list[Job]:
    """Rules and correlations (with the rules they name); filters only act on other rules."""
    jobs = []
    for entry in entries:
        document = entry.document
        if isinstance(document, Rule):
            jobs.append(Job(entry.slug, document.source.raw_text))
        elif isinstance(document, CorrelationRule):
            texts = [document.source.raw_text] + [target.document.source.raw_text for target in entry.targets]
            jobs.append(Job(entry.slug, "\n---\n".join(text.strip().removeprefix("---").strip() for text in texts)))
    return jobs


def convert(jobs: Sequence[Job], targets: Sequence[Target], cache_dir: Path | None, workers: int | None = None) -> dict[str, list[Conversion]]:
    """slug -> one Conversion per target, from the cache where it has them."""
    with Run(targets, cache_dir, workers) as run:
        return run.finish(jobs)


class Run:
    """The conversions of one build. Rule texts given to `add` while the build reads the rules are
    converted meanwhile by worker processes, on the CPUs the reading leaves idle; `finish`
    converts what is left and returns every job's conversions."""

    def __init__(self, targets: Sequence[Target], cache_dir: Path | None, workers: int | None = None) -> None:
        self.targets = tuple(targets)
        self._versions = _versions(targets)
        self._caches = {target.name: _Cache(cache_dir, target, self._versions[target.name]) for target in targets}
        self._workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
        self._seen: set[str] = set()  # the hashes of the texts given
        self._waiting: list[Job] = []  # texts to convert, not yet sent (a job's slug is its text's hash)
        self._sent: list[Future] = []
        self._pool: ProcessPoolExecutor | None = None
        self._lost: Exception | None = None  # the pool failed (a worker lost): `finish` raises it

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def add(self, text: str) -> str:
        """A rule text to convert unless the cache has it for every target; returns its key."""
        key = _hash(text)
        if key in self._seen:
            return key
        self._seen.add(key)
        if any(cache.get(key) is None for cache in self._caches.values()):
            self._waiting.append(Job(key, text))
        if self._pool is None and self._workers > 1 and len(self._waiting) >= IN_PROCESS:
            # spawned, not forked: the build has threads (its history reading) that a fork would copy mid-work
            self._pool = ProcessPoolExecutor(self._workers, mp_context=get_context("spawn"),
                                             initializer=conversion_worker.start_pool_worker, initargs=(self.targets, self._versions))
        while self._pool is not None and self._lost is None and len(self._waiting) >= CHUNK:
            self._send(CHUNK)
        return key

    def finish(self, jobs: Sequence[Job]) -> dict[str, list[Conversion]]:
        """slug -> one Conversion per target (the texts of `jobs` not given yet are converted now)."""
        keys = [self.add(job.text) for job in jobs]
        converted: dict[str, list[Conversion]] = {}
        if self._pool is None:
            if self._waiting:
                conversion_worker.start_worker(self.targets, self._versions)
                converted.update(conversion_worker.convert_chunk(self._waiting))
        else:
            self._send(len(self._waiting))
            if self._lost is not None:
                raise self._lost
            for future in self._sent:
                converted.update(future.result())
        results = {}
        for job, key in zip(jobs, keys):
            results[job.slug] = row = []
            for number, target in enumerate(self.targets):
                found = self._caches[target.name].get(key)
                if found is None:
                    found = converted[key][number]
                    self._caches[target.name].put(key, found)
                row.append(found)
        for cache in self._caches.values():
            cache.save()
        return results

    def _send(self, count: int) -> None:
        assert self._pool is not None
        try:
            for start in range(0, count, CHUNK):
                self._sent.append(self._pool.submit(conversion_worker.convert_chunk, self._waiting[start:start + CHUNK]))
        except Exception as error:  # noqa: BLE001 - a worker lost: reported by `finish`, not in the rules' reading
            self._lost = error
        del self._waiting[:count]


def findings(entries: Sequence[Entry], conversions: dict[str, list[Conversion]]) -> list[Problem]:
    """An info finding per rule and target that did not convert, with the backend's message."""
    found = []
    for entry in entries:
        for conversion in conversions.get(entry.slug, ()):
            if conversion.error is not None:
                source = entry.document.source
                found.append(Problem(source.file_display, source.line, 1, Severity.INFO, Code.CONVERSION_PREFIX + conversion.target,
                                     f"no {conversion.label} query: {conversion.error}"))
    return found


# --- versions and the cache --------------------------------------------------------------------------


def _versions(targets: Sequence[Target]) -> dict[str, str]:
    """target -> "backend-package x.y.z (pySigma a.b.c)", from package metadata (no import)."""
    pysigma = _version("pysigma")
    return {target.name: f"{target.packages[0]} {_version(target.packages[0])} (pySigma {pysigma})" for target in targets}


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Cache:
    """One JSON file per target and versions: rule text's hash -> conversion. Saved with only the
    entries this build used, so it never outgrows the catalog."""

    def __init__(self, folder: Path | None, target: Target, version: str) -> None:
        key = json.dumps([asdict(target), version, [_version(package) for package in target.packages], 2])
        self.path = folder / "conversions" / f"{target.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json" if folder else None
        self.entries: dict[str, dict] = {}
        self.used: set[str] = set()
        self._made: dict[str, Conversion] = {}  # the entries read so far, as conversions (a build asks twice)
        self.changed = False
        if self.path is not None and self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.entries = {}  # a damaged cache is rebuilt

    def get(self, key: str) -> Conversion | None:
        self.used.add(key)
        found = self._made.get(key)
        if found is None and isinstance(data := self.entries.get(key), dict):
            try:
                found = self._made[key] = Conversion(**{**data, "queries": tuple(data.get("queries", ()))})
            except TypeError:
                return None
        return found

    def put(self, key: str, conversion: Conversion) -> None:
        self.entries[key] = asdict(conversion)
        self._made[key] = conversion
        self.used.add(key)
        self.changed = True

    def save(self) -> None:
        if self.path is None or not (self.changed or self.used != self.entries.keys()):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        kept = {key: self.entries[key] for key in self.used if key in self.entries}
        partial.write_text(json.dumps(kept, sort_keys=True), encoding="utf-8")
        os.replace(partial, self.path)
