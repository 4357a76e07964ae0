"""What a conversion worker process does: pySigma and its installed backends and pipelines turn
chunks of rule texts into one query (or the backend's message) per target.

`catalog.conversions` runs these workers and caches what they give. Nothing here reaches the
network: backends and pipelines come from the installed packages (pySigma's entry points), never
from pySigma's online plugin directory.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from catalog.problems import one_line


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


def plugins():
    """pySigma's installed backends and pipelines (its entry points: never its online directory)."""
    try:
        from sigma.plugins import InstalledSigmaPlugins
    except ImportError as error:
        raise ConversionSetupError(f"pySigma is not installed ({error}); pip install 'sigma-catalog[conversions]'") from None
    return InstalledSigmaPlugins.autodiscover(include_validators=False)  # conversions use no validator (a fifth of the import)


# --- the worker process ------------------------------------------------------------------------------

#: What a worker keeps between chunks: its targets, their versions, the backends and pipelines made.
_worker: dict = {}


def start_worker(targets: tuple[Target, ...], versions: dict[str, str]) -> None:
    """Ready this process to convert (a worker's start; the build's own process converts few rules)."""
    installed = plugins()
    _check_plain_regexes_cheaply()
    _worker.update(targets=targets, versions=versions, plugins=installed, backends={}, pipelines={})


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


def start_pool_worker(targets: tuple[Target, ...], versions: dict[str, str]) -> None:
    """A worker process: what it imported stays for good, so the collector's full passes need not
    walk it again while it converts."""
    import gc

    start_worker(targets, versions)
    gc.freeze()


def convert_chunk(jobs: list[Job]) -> list[tuple[str, list[Conversion]]]:
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
