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
from catalog.bounds import PageCaps, page_caps
from catalog.corpus import CorpusIndex
from catalog.evidence import Evidence, evidence_of
from catalog.loader import LoadResult, RuleFile, load
from catalog.model import CorrelationRule, Detection, FilterRule, Rule, SigmaDocument, display_path
from catalog.problems import Code, Problem, Severity, internal_error
from catalog.timelimit import time_limit, time_limits

if TYPE_CHECKING:
    from catalog.attack import AttackKnowledge, AttackMapping

_SLUG_ID = re.compile(r"^[0-9a-f][0-9a-f-]{7,63}$")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
#: Device names that Windows reserves in every folder, with any extension and in any case.
_WINDOWS_RESERVED = re.compile(r"(?:con|prn|aux|nul|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3])(?:\..*)?", re.I | re.S)


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
    page_caps: PageCaps = field(default_factory=PageCaps)  # what gets no page of its own (catalog.bounds)
    labels: dict[str, str] = field(default_factory=dict)  # root -> its name in messages (build_catalog's `labels`)
    evidence: dict[str, Evidence] = field(default_factory=dict)  # slug -> the rule's test evidence (regression_tests_path)

    def shown_path(self, document: SigmaDocument) -> str:
        """How a message names another document's file: never by the build machine's path."""
        return _shown_path(document, self.labels)

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
    """The time limit of analysing `document`; none when its analysis is remembered (a limit's
    system calls for every document were once a third of a serve update's catalog time)."""
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
    labels: dict[str, str] | None = None,
) -> Catalog:
    """The catalog of the rule folders; `load` may be replaced by a caching loader (mkdocs serve).

    `dialects` (e.g. {"sigma"}) keeps only documents of those rule formats; each one left out is
    listed as a notice, so every rule given to the build is still accounted for. `labels` names
    roots in messages (the site's configured folder names instead of absolute paths). Where git has
    the rules' history, `catalog.revisions.add_history_findings` adds what it contradicts."""
    with collector_paused(), time_limits():
        return _build(roots, attack, load, dialects, labels)


def _build(roots: Sequence[str | os.PathLike], attack: "AttackKnowledge | None", load: Callable[[Sequence[str | os.PathLike]], LoadResult],
           dialects: Collection[str] | None, labels: dict[str, str] | None) -> Catalog:
    loaded = load(roots)
    problems = list(loaded.problems)
    documents = loaded.documents if dialects is None else _of_dialects(loaded.documents, dialects, problems)
    entries = []
    for entry in _entries(documents, problems, labels or {}):
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
    evidence, findings = evidence_of((entry.slug, entry.document) for entry in entries if isinstance(entry.document, Rule))
    problems.extend(findings)
    caps = page_caps([entry.document for entry in entries])
    problems.extend(caps.problems)
    return Catalog(entries, problems, loaded.files, corpus, attack.release if attack is not None else None, caps, labels or {}, evidence)


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
    """Lower-case ASCII letters, digits and single dashes only, never a Windows device name: safe
    as a file and URL name on every system that checks the site out."""
    slug = _NOT_SLUG.sub("-", text.lower()).strip("-")[:limit].strip("-")
    return slug + "-0" if is_reserved_name(slug) else slug


def is_reserved_name(name: str) -> bool:
    """Whether Windows refuses `name` as a file or folder name (`nul`, `con.txt`, `COM1`...)."""
    return _WINDOWS_RESERVED.fullmatch(name) is not None


def _id_key(document: SigmaDocument) -> str:
    return (document.id or "").strip().lower()


def _entries(documents: list[SigmaDocument], problems: list[Problem], labels: dict[str, str]) -> list[Entry]:
    """Each document's address: its own id when id-shaped and unique; never another rule's.

    Unique ids take their addresses first, so no name or title can take one; documents sharing an
    id get `<id>-1`, `<id>-2`... (neither the plain address); a name or title slug that looks like
    an id gets the document kind in front (`rule-<slug>`)."""
    sharing = _duplicate_ids(documents, problems, labels)
    slugs: list[str | None] = [None] * len(documents)
    taken: set[str] = set()
    for index, document in enumerate(documents):
        rule_id = _id_key(document)
        if _SLUG_ID.match(rule_id) and rule_id not in sharing:
            slugs[index] = rule_id
            taken.add(rule_id)
    for index, document in enumerate(documents):
        if slugs[index] is not None:
            continue
        rule_id = _id_key(document)
        duplicate = _SLUG_ID.match(rule_id) is not None and rule_id in sharing
        base = rule_id if duplicate else slugify(document.name or document.title) or "rule"
        if not duplicate and _SLUG_ID.match(base):
            base = f"{document.kind}-{base}"
        slug, number = (f"{base}-1", 1) if duplicate else (base, 1)
        while slug in taken:
            number += 1
            slug = f"{base}-{number}"
        taken.add(slug)
        slugs[index] = slug
    return [Entry(document, slug) for document, slug in zip(documents, slugs)]


def _duplicate_ids(documents: list[SigmaDocument], problems: list[Problem], labels: dict[str, str]) -> set[str]:
    """The ids shared by several documents; each of them gets an error at its id line naming the others."""
    by_id: dict[str, list[SigmaDocument]] = {}
    for document in documents:
        rule_id = _id_key(document)
        if rule_id:
            by_id.setdefault(rule_id, []).append(document)
    shared = {rule_id for rule_id, sharing in by_id.items() if len(sharing) > 1}
    for rule_id in by_id:  # in the documents' order, never the set's (it varies from process to process)
        if rule_id not in shared:
            continue
        for document in by_id[rule_id]:
            others = "; ".join(f"'{other.title}' ({_shown_path(other, labels)})" for other in by_id[rule_id] if other is not document)
            line, column = document.id_position or (document.source.line, 1)
            problems.append(Problem(document.source.file_display, line, column, Severity.ERROR, Code.DUPLICATE_ID,
                                    f"the id {rule_id} is also used by {others}; neither document has the id's address"))
    return shared


def _shown_path(document: SigmaDocument, labels: dict[str, str]) -> str:
    """A document's file inside its rule folder, after the folder's label when there is one (never
    the build machine's path), with the document number in a collection."""
    source = document.source
    label = labels.get(source.root)
    shown = source.path if label is None else display_path(label, source.path)
    return shown if source.documents_in_file == 1 else f"{shown} (document {source.document + 1})"


def _link(entries: list[Entry], problems: list[Problem]) -> None:
    """Resolve correlation, filter and related references: by id first, then by name."""
    lookup = _references(entries, problems)
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


def _references(entries: list[Entry], problems: list[Problem]) -> dict[str, Entry]:
    """What a reference may name: every id, then the names that are no document's id (a name
    equal to another document's id is an error, and never captures its references)."""
    lookup: dict[str, Entry] = {}
    for entry in entries:
        if rule_id := _id_key(entry.document):
            lookup.setdefault(rule_id, entry)
    for entry in entries:
        document = entry.document
        name = (document.name or "").strip().lower()
        if not name:
            continue
        owner = lookup.get(name)
        if owner is not None and owner is not entry and _id_key(owner.document) == name:
            line, column = document.name_position or (document.source.line, 1)
            problems.append(Problem(document.source.file_display, line, column, Severity.ERROR, Code.NAME_IS_OTHER_ID,
                                    f"the name '{document.name[:80]}' is the id of another document ('{owner.document.title[:80]}'); references to it keep naming that document"))
            continue
        lookup.setdefault(name, entry)
    return lookup


def _map_attack(entry: Entry, attack: "AttackKnowledge", problems: list[Problem]) -> None:
    entry.attack = _mapping(entry.document.tags, attack)
    for finding in entry.attack.findings:  # every one is a problem: analyze, check and the site agree
        line, column = entry.document.tag_position(finding.tag) or (entry.document.source.line, 1)
        problems.append(Problem(entry.document.source.file_display, line, column, finding.severity, Code.ATTACK_PREFIX + finding.code, finding.message))


def _document_problem(document: SigmaDocument, code: str, message: str, severity: Severity = Severity.ERROR) -> Problem:
    return Problem(document.source.file_display, document.source.line, 1, severity, code, message)
