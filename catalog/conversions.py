"""Each rule's queries for real SIEM backends, converted with pySigma and its installed backends.

Optional: needs `pip install 'sigma-catalog[conversions]'` (pySigma 1.x and the Splunk,
Elasticsearch and Kusto backends, the Sysmon and Windows pipelines). Nothing here reaches the
network: backends and pipelines come from the installed packages (pySigma's entry points), never
from pySigma's online plugin directory.

Conversions run in worker processes, a chunk of rules per task, and are cached by (rule text,
target, its pipelines, the installed versions) in one file per target under the build cache, so a
build after the first, and a `mkdocs serve` rebuild, converts only rules that changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

from catalog.model import CorrelationRule, Rule
from catalog.pipeline import Entry
from catalog.problems import Code, Problem, Severity, one_line


@dataclass(frozen=True, slots=True)
class Target:
    """A query language: a pySigma backend and the pipelines for Windows rules (the first that
    applies to the rule's log source; the last one otherwise)."""

    name: str
    label: str
    backend: str
    windows_pipelines: tuple[str, ...] = ()
    #: the distributions providing the backend (first) and the pipelines: known targets are checked
    #: and versioned from package metadata alone, so a build with every query cached imports no pySigma
    packages: tuple[str, ...] = ()


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


@dataclass(frozen=True, slots=True)
class Conversion:
    """One rule's query (or why there is none) for one target."""

    target: str
    label: str
    backend: str  # "splunk 2.1.0 (pySigma 1.5.1)"
    pipeline: str  # the pipelines applied, "none" without one
    queries: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    slug: str
    text: str  # the rule's YAML; a correlation's with the rules it names, as one collection


class ConversionSetupError(Exception):
    """pySigma or a backend is missing; one line for the build log."""


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
    available = _plugins()
    backend, _, pipeline = name.partition(":")
    if backend not in available.backends:
        raise ConversionSetupError(f"the pySigma backend '{backend}' is not installed (installed: {', '.join(sorted(available.backends)) or 'none'})")
    if pipeline and pipeline not in available.pipelines:
        raise ConversionSetupError(f"the pySigma pipeline '{pipeline}' is not installed")
    return Target(name, backend, backend, (pipeline,) if pipeline else (), (_distribution_of(available.backends[backend]),))


def _plugins():
    try:
        from sigma.plugins import InstalledSigmaPlugins
    except ImportError as error:
        raise ConversionSetupError(f"pySigma is not installed ({error}); pip install 'sigma-catalog[conversions]'") from None
    return InstalledSigmaPlugins.autodiscover()


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
    versions = _versions(targets)
    caches = {target.name: _Cache(cache_dir, target, versions[target.name]) for target in targets}
    results: dict[str, dict[str, Conversion]] = {job.slug: {} for job in jobs}
    todo: list[Job] = []
    hashes = {job.slug: _hash(job.text) for job in jobs}
    for job in jobs:
        for target in targets:
            found = caches[target.name].get(hashes[job.slug])
            if found is not None:
                results[job.slug][target.name] = found
        if len(results[job.slug]) < len(targets):
            todo.append(job)
    for slug, converted in _run(todo, targets, versions, workers):
        for conversion in converted:
            results[slug].setdefault(conversion.target, conversion)
            caches[conversion.target].put(hashes[slug], conversion)
    for cache in caches.values():
        cache.save()
    return {slug: [by_target[t.name] for t in targets if t.name in by_target] for slug, by_target in results.items()}


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


def _run(todo: list[Job], targets: Sequence[Target], versions: dict[str, str], workers: int | None):
    if not todo:
        return []
    chunks = [todo[start:start + CHUNK] for start in range(0, len(todo), CHUNK)]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    if len(todo) < IN_PROCESS or workers <= 1:
        _start_worker(tuple(targets), versions)
        return [pair for chunk in chunks for pair in _convert_chunk(chunk)]
    # spawned, not forked: the build has threads (background exports) that a fork would copy mid-work
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_start_pool_worker, initargs=(tuple(targets), versions)) as pool:
        return [pair for converted in pool.map(_convert_chunk, chunks) for pair in converted]


# --- the worker side --------------------------------------------------------------------------------

_worker: dict = {}


def _start_worker(targets: tuple[Target, ...], versions: dict[str, str]) -> None:
    plugins = _plugins()
    _check_plain_regexes_cheaply()
    _worker.update(targets=targets, versions=versions, plugins=plugins, backends={}, pipelines={})


#: A regular expression made only of literal characters, escaped characters and the wildcards `.`
#: and `.*` (what pySigma makes of a plain value): valid in every regex engine. No two of its
#: alternatives start with the same character, so matching is linear in the text.
_PLAIN_REGEX = re.compile(r"(?:\\[^A-Za-z0-9]|[^\\.*+?^$\[\](){}|]|\.\*?)*")


def _check_plain_regexes_cheaply() -> None:
    """pySigma makes a regular expression of every string value it converts (for the backends'
    `{regex}` templates, which most expressions do not use) and compiles each one to check it
    (`SigmaRegularExpression.compile`): a fifth of the conversions' time on SigmaHQ, for 7,000
    distinct expressions that Python's cache of 512 cannot keep. Those made of plain values are
    valid by construction: they skip the compilation. Any other (a rule's own `|re` value, say) is
    compiled and checked as before, so every error pySigma reports is still reported."""
    from sigma.types import SigmaRegularExpression

    check = SigmaRegularExpression.compile
    if getattr(check, "plain_regexes_skipped", False):
        return

    @functools.wraps(check)  # pySigma's own check stays at `__wrapped__`
    def compile_unless_plain(self) -> None:
        if _PLAIN_REGEX.fullmatch(str(self.regexp)) is None:
            check(self)

    compile_unless_plain.plain_regexes_skipped = True  # type: ignore[attr-defined]
    SigmaRegularExpression.compile = compile_unless_plain


def _start_pool_worker(targets: tuple[Target, ...], versions: dict[str, str]) -> None:
    """A worker process: what it imported stays for good, so the collector's full passes need not
    walk it again while it converts."""
    import gc

    _start_worker(targets, versions)
    gc.freeze()


def _convert_chunk(jobs: list[Job]) -> list[tuple[str, list[Conversion]]]:
    """The YAML of each job is read once (libyaml where present: pySigma's own reading is the slow
    part); each target gets its own collections from it, as pipelines change the rules they process."""
    import yaml

    documents: list[list | Exception] = []
    for job in jobs:
        try:
            documents.append(list(yaml.load_all(job.text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))))
        except yaml.YAMLError as error:
            documents.append(error)
    by_target = [_convert_target(documents, target) for target in _worker["targets"]]
    return [(job.slug, [converted[number] for converted in by_target]) for number, job in enumerate(jobs)]


def _convert_target(documents: list[list | Exception], target: Target) -> list[Conversion]:
    """One conversion per job. The single-rule jobs that share a backend and pipeline are converted
    as pySigma's `Backend.convert` would convert each alone, but with the processing pipeline put
    together once for them all (pySigma does it again on every call: a third of its time)."""
    from sigma.collection import SigmaCollection
    from sigma.conversion.base import Backend
    from sigma.rule import SigmaRule

    version = _worker["versions"][target.name]
    found: list[Conversion | None] = [None] * len(documents)
    groups: dict[str, list[tuple[int, SigmaRule]]] = {}
    for number, job_documents in enumerate(documents):
        pipeline = "none"
        try:
            if isinstance(job_documents, Exception):
                raise job_documents
            collection = SigmaCollection.from_dicts(job_documents)
            pipeline = _pipeline_name(collection, target)
            backend = _backend(target, pipeline)
            if len(collection.rules) == 1 and isinstance(collection.rules[0], SigmaRule) and type(backend).convert is Backend.convert:
                groups.setdefault(pipeline, []).append((number, collection.rules[0]))
                continue
            found[number] = _conversion(target, version, pipeline, backend.convert(collection))
        except Exception as error:  # noqa: BLE001 - pySigma's errors (and a backend's bugs) cost this query only
            found[number] = _conversion(target, version, pipeline, error=error)
    for pipeline, rules in groups.items():
        backend, ready = _backend(target, pipeline), False
        for number, rule in rules:
            try:
                if not ready:  # what Backend.convert does first (with the default format), once
                    backend.init_processing_pipeline()
                    ready = True
                queries = backend.finalize(backend.convert_rule(rule, backend.default_format), backend.default_format)
                found[number] = _conversion(target, version, pipeline, queries)
            except Exception as error:  # noqa: BLE001 - as above
                found[number] = _conversion(target, version, pipeline, error=error)
    return found


def _conversion(target: Target, version: str, pipeline: str, queries=(), error: Exception | None = None) -> Conversion:
    """The queries a backend gave (one query or a list of them), or its error."""
    if error is not None:
        return Conversion(target.name, target.label, version, pipeline, (), _message(error))
    if isinstance(queries, str):
        queries = [queries]
    return Conversion(target.name, target.label, version, pipeline, tuple(str(query) for query in queries))


#: pySigma ends the message of an error that is not its own with what it was doing to which rule,
#: "(while converting rule None)": the rule, read from text, has no source (its page says which).
_WHILE_RULE = re.compile(r" \(while (.+?)(?: on| for)? rule None\)")


def _message(error: Exception) -> str:
    return _WHILE_RULE.sub(r" (while \1)", one_line(error))


def _pipeline_name(collection, target: Target) -> str:
    rules = [rule for rule in collection.rules if getattr(rule, "logsource", None) is not None]
    if not target.windows_pipelines or not rules or rules[0].logsource.product != "windows":
        return "none"
    logsource = rules[0].logsource
    for name in target.windows_pipelines:
        if _applies(_pipeline(name), logsource.category, logsource.service):
            return name
    return target.windows_pipelines[-1]


def _applies(pipeline, category: str | None, service: str | None) -> bool:
    """The pipeline names the rule's category or service in one of its log source conditions."""
    from sigma.processing.conditions import LogsourceCondition

    for item in pipeline.items:
        for condition in getattr(item, "rule_conditions", ()):
            if isinstance(condition, LogsourceCondition):
                wanted = condition.logsource
                if (wanted.category and wanted.category == category) or (wanted.service and wanted.service == service):
                    return True
    return False


def _pipeline(name: str):
    pipelines = _worker["pipelines"]
    if name not in pipelines:
        made = _worker["plugins"].pipelines[name]
        pipelines[name] = made() if callable(made) else made
    return pipelines[name]


def _backend(target: Target, pipeline: str):
    key = (target.backend, pipeline)
    backends = _worker["backends"]
    if key not in backends:
        backends[key] = _worker["plugins"].backends[target.backend](processing_pipeline=None if pipeline == "none" else _pipeline(pipeline))
    return backends[key]


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
        self.changed = False
        if self.path is not None and self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.entries = {}  # a damaged cache is rebuilt

    def get(self, key: str) -> Conversion | None:
        data = self.entries.get(key)
        self.used.add(key)
        if not isinstance(data, dict):
            return None
        try:
            return Conversion(**{**data, "queries": tuple(data.get("queries", ()))})
        except TypeError:
            return None

    def put(self, key: str, conversion: Conversion) -> None:
        self.entries[key] = asdict(conversion)
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
