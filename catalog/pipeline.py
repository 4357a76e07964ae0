"""The whole analysis of a catalog: load -> analyse -> index the corpus -> link -> map ATT&CK."""

from __future__ import annotations

import gc
import os
import re
import weakref
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Collection, Iterator, Sequence

from catalog.analysis import Exclusion, RuleAnalysis, analyse, exclusions_of
from catalog.corpus import CorpusIndex
from catalog.loader import LoadResult, RuleFile, load
from catalog.model import CorrelationRule, Detection, FilterRule, Rule, SigmaDocument
from catalog.problems import Code, Problem, Severity, internal_error
from catalog.timelimit import time_limit

if TYPE_CHECKING:
    from catalog.attack import AttackKnowledge, AttackMapping

_SLUG_ID = re.compile(r"^[0-9a-f][0-9a-f-]{7,63}$")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(eq=False, slots=True)
class Entry:
    """One Sigma document of the catalog with everything computed about it."""

    document: SigmaDocument
    slug: str  # stable address: derived from the id where there is one
    analysis: RuleAnalysis | None = None  # detection rules and filters
    attack: "AttackMapping | None" = None
    targets: list["Entry"] = field(default_factory=list)  # rules a correlation or filter names
    correlations: list["Entry"] = field(default_factory=list)  # correlations naming this rule
    filters: list["Entry"] = field(default_factory=list)  # filters applying to this rule
    related: list[tuple[str, "Entry | None"]] = field(default_factory=list)  # (relation, entry or None)

    @property
    def filter_exclusions(self) -> list[Exclusion]:
        """Exclusions that Sigma filter rules add to this rule."""
        return [exclusion for _, exclusion in self.exclusions_by_filter()]

    def exclusions_by_filter(self) -> list[tuple["Entry", Exclusion]]:
        """(filter entry, exclusion) for every exclusion that a Sigma filter rule adds to this rule."""
        found = []
        for entry in self.filters:
            detection = entry.document.detection
            for condition in detection.conditions:
                found.extend((entry, exclusion) for exclusion in exclusions_of(condition.expression, detection.identifiers, entry.document.title))
        return found


@dataclass(slots=True)
class Catalog:
    entries: list[Entry]
    problems: list[Problem]
    files: list[RuleFile]
    corpus: CorpusIndex
    attack_release: str | None = None

    def by_slug(self) -> dict[str, Entry]:
        return {entry.slug: entry for entry in self.entries}

    @property
    def rules(self) -> list[Entry]:
        return [entry for entry in self.entries if isinstance(entry.document, Rule)]

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity is Severity.ERROR]


#: Analyses of the detections still alive: a loader that hands back the same document objects for
#: unchanged files (the site plugin's, under mkdocs serve) gets their analyses back for free.
_analyses: "weakref.WeakKeyDictionary[Detection, RuleAnalysis]" = weakref.WeakKeyDictionary()


def _analysis(detection: Detection) -> RuleAnalysis:
    analysis = _analyses.get(detection)
    if analysis is None:
        analysis = _analyses[detection] = analyse(detection)
    return analysis


def _limit(document: SigmaDocument):
    """The time limit of analysing `document`; none when its analysis is remembered (the limit's
    two system calls per document were a third of a serve update's catalog time)."""
    detection = getattr(document, "detection", None)
    return nullcontext() if detection is not None and detection in _analyses else time_limit()


#: The ATT&CK mappings of the last knowledge base, by tags: rules share tag lists, and under
#: mkdocs serve the unchanged rules map the same tags again on every update.
_mappings: tuple[object, dict[tuple, "AttackMapping"]] = (None, {})


def _mapping(tags: Sequence[str], attack: "AttackKnowledge") -> "AttackMapping":
    from catalog.attack import map_tags

    global _mappings
    if _mappings[0] is not attack:
        _mappings = (attack, {})
    try:
        key = tuple(tags)
        hash(key)
    except TypeError:  # a tag that is not a string (malformed YAML): no memo
        return map_tags(tags, attack)
    mapping = _mappings[1].get(key)
    if mapping is None:
        mapping = _mappings[1][key] = map_tags(tags, attack)
    return mapping


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a catalog is built or rendered.

    Loading creates a few hundred thousand long-lived, acyclic objects; the collector would rescan
    them again and again (it doubled the loading time, and took half of page rendering)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_catalog(
    roots: Sequence[str | os.PathLike],
    attack: "AttackKnowledge | None" = None,
    *,
    load: Callable[[Sequence[str | os.PathLike]], LoadResult] = load,
    dialects: Collection[str] | None = None,
) -> Catalog:
    """The catalog of the rule folders; `load` may be replaced by a caching loader (mkdocs serve).

    `dialects` (e.g. {"sigma"}) keeps only documents of those rule formats; each one left out is
    listed as a notice, so every rule given to the build is still accounted for."""
    with collector_paused():
        return _build(roots, attack, load, dialects)


def _build(roots: Sequence[str | os.PathLike], attack: "AttackKnowledge | None", load: Callable[[Sequence[str | os.PathLike]], LoadResult], dialects: Collection[str] | None) -> Catalog:
    loaded = load(roots)
    problems = list(loaded.problems)
    documents = loaded.documents if dialects is None else _of_dialects(loaded.documents, dialects, problems)
    entries = []
    for entry in _entries(documents, problems):
        # one document can only cost its own page: a failure analysing it becomes its problem
        try:
            with _limit(entry.document):
                findings = _analyse(entry, attack)
        except Exception as error:  # noqa: BLE001 - a bug or a limit must not take the catalog down
            source = entry.document.source
            problems.append(internal_error(source.file_display, error, "analysing this document", source.line))
            continue
        problems.extend(findings)
        entries.append(entry)
    corpus = CorpusIndex()
    for entry in entries:
        if isinstance(entry.document, Rule):
            corpus.add(entry.slug, entry.analysis.indicators)
    _link(entries, problems)
    return Catalog(entries, problems, loaded.files, corpus, attack.release if attack is not None else None)


def _of_dialects(documents: list[SigmaDocument], dialects: Collection[str], problems: list[Problem]) -> list[SigmaDocument]:
    kept = []
    for document in documents:
        if document.dialect in dialects:
            kept.append(document)
        else:
            problems.append(_document_problem(document, Code.DIALECT_EXCLUDED, f"a {document.dialect} rule, left out: the build takes {', '.join(sorted(dialects))} rules", Severity.INFO))
    return kept


def _analyse(entry: Entry, attack: "AttackKnowledge | None") -> list[Problem]:
    """Analyse one entry and map its ATT&CK tags; returns its findings."""
    document = entry.document
    if isinstance(document, (Rule, FilterRule)):
        entry.analysis = _analysis(document.detection)
    findings: list[Problem] = []
    if attack is not None:
        _map_attack(entry, attack, findings)
    return findings


def slugify(text: str, limit: int = 80) -> str:
    """Lower-case ASCII letters, digits and single dashes only: safe as a file and URL name."""
    return _NOT_SLUG.sub("-", text.lower()).strip("-")[:limit].strip("-")


def _entries(documents: list[SigmaDocument], problems: list[Problem]) -> list[Entry]:
    entries: list[Entry] = []
    taken: set[str] = set()
    _duplicate_ids(documents, problems)
    for document in documents:
        rule_id = (document.id or "").strip().lower()
        base = rule_id if _SLUG_ID.match(rule_id) else slugify(document.name or document.title) or "rule"
        slug, number = base, 1
        while slug in taken:
            number += 1
            slug = f"{base}-{number}"
        taken.add(slug)
        entries.append(Entry(document, slug))
    return entries


def _duplicate_ids(documents: list[SigmaDocument], problems: list[Problem]) -> None:
    """Each document sharing an id gets an error at its id line naming the others (the first keeps the id's address)."""
    by_id: dict[str, list[SigmaDocument]] = {}
    for document in documents:
        rule_id = (document.id or "").strip().lower()
        if rule_id:
            by_id.setdefault(rule_id, []).append(document)
    for rule_id, sharing in by_id.items():
        for document in sharing if len(sharing) > 1 else ():
            others = "; ".join(f"'{other.title}' ({_inside_rule_folder(other)})" for other in sharing if other is not document)
            line, column = document.id_position or (document.source.line, 1)
            problems.append(Problem(document.source.file_display, line, column, Severity.ERROR, Code.DUPLICATE_ID, f"the id {rule_id} is also used by {others}"))


def _inside_rule_folder(document: SigmaDocument) -> str:
    """A document's file as a path inside its rule folder (never absolute), with the document number in a collection."""
    source = document.source
    return source.path if source.documents_in_file == 1 else f"{source.path} (document {source.document + 1})"


def _link(entries: list[Entry], problems: list[Problem]) -> None:
    """Resolve correlation, filter and related references by id or name."""
    lookup: dict[str, Entry] = {}
    for entry in entries:
        for reference in (entry.document.id, entry.document.name):
            if reference:
                lookup.setdefault(reference.strip().lower(), entry)
    for entry in entries:
        document = entry.document
        if isinstance(document, FilterRule) and document.any_rule:
            for target in entries:
                if isinstance(target.document, Rule) and document.logsource.covers(target.document.logsource):
                    entry.targets.append(target)
                    target.filters.append(entry)
        if isinstance(document, (CorrelationRule, FilterRule)):
            for reference in document.rules:
                target = lookup.get(reference.strip().lower())
                if target is None:
                    problems.append(_document_problem(document, Code.UNRESOLVED_REFERENCE, f"'{reference}' names no rule of the catalog (by id or name)", Severity.WARNING))
                    continue
                entry.targets.append(target)
                (target.correlations if isinstance(document, CorrelationRule) else target.filters).append(entry)
        for related in document.related:
            entry.related.append((related.type, lookup.get(related.id.strip().lower())))


def _map_attack(entry: Entry, attack: "AttackKnowledge", problems: list[Problem]) -> None:
    entry.attack = _mapping(entry.document.tags, attack)
    for finding in entry.attack.findings:
        if finding.severity is Severity.WARNING:
            line, column = entry.document.tag_position(finding.tag) or (entry.document.source.line, 1)
            problems.append(Problem(entry.document.source.file_display, line, column, Severity.WARNING, Code.ATTACK_PREFIX + finding.code, finding.message))


def _document_problem(document: SigmaDocument, code: str, message: str, severity: Severity = Severity.ERROR) -> Problem:
    return Problem(document.source.file_display, document.source.line, 1, severity, code, message)
