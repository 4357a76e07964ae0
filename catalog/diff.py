"""The change set of rule folders against a base git revision: matching documents, describing differences.

`compute_changes(roots, "origin/main", attack)` reads the rule folders as they are in the base git
revision (straight from git's object store: `git ls-tree` + `git cat-file --batch`, no worktree, no
checkout; works in any clone that has the revision, e.g. CI's `fetch-depth: 0`), builds the catalog
of both sides with the same ATT&CK knowledge, matches documents (rule id first, then file path and
document number, then identical text at a new path) and describes each difference: indicators and
exclusions added and removed, ATT&CK techniques gained and lost, level, status and title changes,
and, for new and changed rules, the one existing rule they most likely duplicate.

The working tree is the head side, so uncommitted edits show up too. By default the base is the
merge base of the given revision and HEAD (`git diff base...HEAD` semantics): a branch that is
behind main shows only its own changes. Where there is no merge base (a shallow clone), the
revision itself is used.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from catalog.analysis import Exclusion, ExcludedItem, RuleAnalysis
from catalog.changes import (
    KINDS,
    ChangeError,
    ChangeSet,
    DuplicateHint,
    ExclusionChange,
    IndicatorChange,
    RuleChange,
    TechniqueChange,
)
from catalog.corpus import CorpusIndex
from catalog.git import GitError, export_revision, repository_root, resolve_revision
from catalog.model import CorrelationRule, FilterRule, Rule, SigmaDocument, display_path
from catalog.pipeline import Catalog, Entry, build_catalog
from catalog.similarity import Similarity, most_similar

if TYPE_CHECKING:
    from catalog.attack import AttackKnowledge

#: Metadata compared between the two sides, besides title, level and status (which have fields).
_METADATA = ("id", "name", "description", "author", "date", "modified", "license", "references", "tags", "falsepositives", "related", "fields",
             "regression_tests_path", "simulation")


# --- comparing ----------------------------------------------------------------------------


def compute_changes(
    roots: Sequence[str | os.PathLike],
    base_ref: str,
    attack: "AttackKnowledge | None" = None,
    *,
    head: Catalog | None = None,
    merge_base: bool = True,
    labels: dict[str, str] | None = None,
) -> ChangeSet:
    """The change set of the working tree's rule folders against `base_ref`.

    `roots` are the rule folders exactly as the head catalog was built from; `head` is that catalog
    when the caller has it. `labels` names each root for display (the site shows `rules/x.yml`,
    not the absolute folder the plugin builds from); by default a root is shown as written.
    """
    if not roots:
        raise ChangeError("no rule folders to compare")
    root_texts = [os.fspath(root) for root in roots]
    try:
        repo = repository_root(root_texts[0])
        commit, is_merge_base = resolve_revision(repo, base_ref, merge_base)
    except GitError as error:
        raise ChangeError(str(error)) from None
    inside = inside_repository(repo, root_texts)
    if head is None:
        head = build_catalog(root_texts, attack=attack)
    with tempfile.TemporaryDirectory(prefix="sigma-catalog-base-") as temporary:
        base_roots, base = catalog_at(repo, commit, inside, Path(temporary), attack)
        # The base documents name their folder by its temporary path: speak of it as the head does.
        rename = dict(zip(base_roots, root_texts))
        shown = {root: (labels or {}).get(root, root) for root in root_texts}
        changes = diff_catalogs(base, head, base_root_names={temporary: shown[root] for temporary, root in rename.items()}, head_root_names=shown)
        base_problem_keys = {_problem_key(problem, rename) for problem in base.problems}
    new_problems = [problem for problem in head.problems if _problem_key(problem, {}) not in base_problem_keys]
    return ChangeSet(
        base_ref=base_ref,
        base_commit=commit,
        changes=changes,
        merge_base=is_merge_base,
        base_problems=len(base.problems),
        head_problems=len(head.problems),
        new_problems=new_problems,
    )


def catalog_at(repo: Path, commit: str, inside: Sequence[str], folder: Path,
               attack: "AttackKnowledge | None" = None) -> tuple[list[str], Catalog]:
    """(the rule folders' paths under `folder`, their catalog) as they are in `commit`, exported from git."""
    export = folder / "tree"
    export.mkdir()
    try:
        export_revision(repo, commit, inside, export)
    except GitError as error:
        raise ChangeError(str(error)) from None
    roots = []
    for relative in inside:
        root = export / relative if relative not in ("", ".") else export
        if not root.exists():
            root.mkdir(parents=True, exist_ok=True)  # the folder is new (or gone): everything in it is added (removed)
        roots.append(str(root))
    return roots, build_catalog(roots, attack=attack)


def inside_repository(repo: Path, roots: list[str]) -> list[str]:
    """Each rule folder as a path inside the repository (ChangeError for one outside it)."""
    real_repo = repo.resolve()
    inside: list[str] = []
    for root in roots:
        real = Path(os.path.realpath(root))
        if not real.is_relative_to(real_repo):
            raise ChangeError(f"the rule folder {root} is outside the git repository {repo}")
        inside.append(real.relative_to(real_repo).as_posix())
    return inside


def _problem_key(problem, rename: dict[str, str]) -> tuple[str, str, str]:
    path = problem.path
    for temporary, original in rename.items():
        if path.startswith(temporary.rstrip("/") + "/") or path == temporary:
            path = display_path(original, path[len(temporary.rstrip("/")) + 1 :]) if path != temporary else original
            break
    message = problem.message
    for temporary, original in rename.items():
        message = message.replace(temporary, original)
    return path, problem.code, message


def _location(entry: Entry, root_names: dict[str, str]) -> str:
    source = entry.document.source
    root = root_names.get(source.root, source.root)
    path = display_path(root, source.path)
    return path if source.documents_in_file == 1 else f"{path} (document {source.document + 1})"


def _text_hash(entry: Entry) -> str:
    return hashlib.sha256(entry.document.source.raw_text.encode("utf-8", "surrogatepass")).hexdigest()


def diff_catalogs(
    base: Catalog,
    head: Catalog,
    base_root_names: dict[str, str] | None = None,
    head_root_names: dict[str, str] | None = None,
) -> list[RuleChange]:
    """Match the documents of two catalogs and describe what changed, in a stable order.

    Paths are compared (and shown) with each side's rule folders renamed by the given maps.
    """
    base_location = {id(entry): _location(entry, base_root_names or {}) for entry in base.entries}
    head_location = {id(entry): _location(entry, head_root_names or {}) for entry in head.entries}
    pairs, unmatched_base, unmatched_head = _match(base, head, base_location, head_location)
    changes: list[RuleChange] = []
    for old, new in pairs:
        change = compare_entries(old, new, base_location[id(old)], head_location[id(new)], head.corpus)
        if change is not None:
            changes.append(change)
    for entry in unmatched_head:
        changes.append(_whole(entry, "added", None, head_location[id(entry)], head.corpus))
    for entry in unmatched_base:
        changes.append(_whole(entry, "removed", base_location[id(entry)], None, head.corpus))

    # likely duplicates, for what a reviewer is asked to accept: new and changed rules
    new_slugs = {change.slug for change in changes if change.kind == "added"}
    by_slug = head.by_slug()
    similarity = Similarity(head)
    finished: list[RuleChange] = []
    for change in changes:
        if change.kind in ("added", "modified", "renamed") and change.slug in by_slug:
            hint = likely_duplicate(by_slug[change.slug], head, new_slugs, head_location, by_slug, similarity)
            if hint is not None:
                change = replace(change, likely_duplicate_of=hint)
        finished.append(change)
    finished = _same_ids(finished, head, head_location)
    order = {kind: index for index, kind in enumerate(KINDS)}
    finished.sort(key=lambda change: (order[change.kind], change.title.casefold(), change.new_path or change.old_path or "", change.slug))
    return finished


def _match(base: Catalog, head: Catalog, base_location: dict[int, str],
           head_location: dict[int, str]) -> tuple[list[tuple[Entry, Entry]], list[Entry], list[Entry]]:
    """(matched pairs, base documents without a match, head documents without a match)."""
    pairs: list[tuple[Entry, Entry]] = []
    unmatched_base = {id(entry): entry for entry in base.entries}
    unmatched_head = {id(entry): entry for entry in head.entries}

    def pair(old: Entry, new: Entry) -> None:
        pairs.append((old, new))
        del unmatched_base[id(old)]
        del unmatched_head[id(new)]

    # 1. by rule id, where one document has it on each side (a shared id falls through to paths:
    # a copy with the same id is an added duplicate, never a rename of the original)
    base_by_id, head_by_id = _unique_ids(base), _unique_ids(head)
    for key, entry in head_by_id.items():
        old = base_by_id.get(key)
        if old is not None:
            pair(old, entry)
    # 2. by path (and document number)
    base_by_path: dict[str, Entry] = {}
    for entry in unmatched_base.values():
        base_by_path.setdefault(base_location[id(entry)], entry)
    for entry in list(unmatched_head.values()):
        old = base_by_path.get(head_location[id(entry)])
        if old is not None and id(old) in unmatched_base:
            pair(old, entry)
    # 3. the same text at a new path
    base_by_text: dict[str, list[Entry]] = {}
    for entry in unmatched_base.values():
        base_by_text.setdefault(_text_hash(entry), []).append(entry)
    for entry in list(unmatched_head.values()):
        candidates = [old for old in base_by_text.get(_text_hash(entry), ()) if id(old) in unmatched_base]
        if candidates:
            pair(candidates[0], entry)
    return pairs, list(unmatched_base.values()), list(unmatched_head.values())


def _unique_ids(catalog: Catalog) -> dict[str, Entry]:
    """id -> document, for the ids that exactly one document has."""
    by_id: dict[str, list[Entry]] = {}
    for entry in catalog.entries:
        if key := (entry.document.id or "").strip().lower():
            by_id.setdefault(key, []).append(entry)
    return {key: entries[0] for key, entries in by_id.items() if len(entries) == 1}


def _same_ids(changes: list[RuleChange], head: Catalog, head_location: dict[int, str]) -> list[RuleChange]:
    """Changes of documents whose id another head document has too, marked with those documents' files."""
    by_id: dict[str, list[Entry]] = {}
    for entry in head.entries:
        if key := (entry.document.id or "").strip().lower():
            by_id.setdefault(key, []).append(entry)
    marked = []
    for change in changes:
        sharing = by_id.get((change.rule_id or "").strip().lower(), []) if change.has_page else []
        others = tuple(head_location[id(entry)] for entry in sharing if entry.slug != change.slug)
        marked.append(replace(change, same_id_as=others) if others else change)
    return marked


def likely_duplicate(
    entry: Entry,
    catalog: Catalog,
    new_slugs: set[str] = frozenset(),
    locations: dict[int, str] | None = None,
    by_slug: dict[str, Entry] | None = None,
    similarity: Similarity | None = None,
) -> DuplicateHint | None:
    """The rule `entry` most likely duplicates, by the measure of the Similar rules sections
    (catalog.similarity): None unless the pair scores as a likely duplicate."""
    if entry.analysis is None or not isinstance(entry.document, Rule):
        return None
    similarity = similarity if similarity is not None else Similarity(catalog)
    similar = most_similar(similarity, entry)
    if similar is None:
        return None
    other = (by_slug if by_slug is not None else catalog.by_slug()).get(similar.slug)
    if other is None:
        return None
    path = (locations or {}).get(id(other)) or _location(other, {})
    total = len({indicator.key for indicator in entry.analysis.indicators})
    return DuplicateHint(similar.slug, other.document.title, path, len(similar.shared_indicators), total, similar.slug in new_slugs, similar.score)


def _indicators(analysis: RuleAnalysis | None, corpus: CorpusIndex) -> dict[tuple, IndicatorChange]:
    """The rule's indicators, each with how many rules of the head catalog (`corpus`) have it."""
    if analysis is None:
        return {}
    return {indicator.key: IndicatorChange(indicator.field_label, indicator.kind, indicator.value, corpus.count(indicator.key))
            for indicator in analysis.indicators}


def _exclusions(analysis: RuleAnalysis | None) -> dict[tuple, ExclusionChange]:
    """Exclusions keyed by what they exclude (renaming a filter identifier changes nothing)."""
    if analysis is None:
        return {}
    found: dict[tuple, ExclusionChange] = {}
    for exclusion in analysis.exclusions:
        key = tuple(search.alternatives for search in exclusion.searches)
        found.setdefault(key, _exclusion_change(exclusion))
    return found


def _exclusion_change(exclusion: Exclusion) -> ExclusionChange:
    def item_text(item: ExcludedItem) -> str:
        joiner = " and " if item.match_all else ", "
        return f"{item.field_label} {item.kind} {joiner.join(item.values)}"

    def search_text(search) -> str:
        return " or ".join(" and ".join(item_text(item) for item in alternative) for alternative in search.alternatives)

    if exclusion.combined:
        text = " and ".join(f"({search_text(search)})" for search in exclusion.searches)
    else:
        text = search_text(exclusion.searches[0]) if exclusion.searches else ""
    values = tuple(dict.fromkeys(
        (item.field_label, item.kind, value)
        for search in exclusion.searches for alternative in search.alternatives for item in alternative for value in item.values
    ))
    return ExclusionChange(exclusion.identifiers, exclusion.scope, exclusion.combined, text, values)


def _techniques(entry: Entry) -> dict[str, TechniqueChange]:
    if entry.attack is None:
        return {}
    found = {}
    for mapped in entry.attack.techniques:
        technique = mapped.technique
        found.setdefault(technique.id, TechniqueChange(technique.id, technique.name, technique.url))
    for unknown in entry.attack.unknown_techniques:
        found.setdefault(unknown, TechniqueChange(unknown, "(not in this ATT&CK release)"))
    return found


def _logic(entry: Entry) -> tuple:
    """What decides which events match: conditions and search identifier definitions."""
    document = entry.document
    if isinstance(document, (Rule, FilterRule)):
        detection = document.detection
        return (
            tuple(condition.text for condition in detection.conditions),
            tuple(sorted((name, repr(identifier.definition)) for name, identifier in detection.identifiers.items())),
            detection.timeframe,
            document.logsource,
            tuple(document.rules) if isinstance(document, FilterRule) else (),
        )
    if isinstance(document, CorrelationRule):
        return (document.type, document.rules, document.group_by, document.timespan, document.condition, document.generate,
                tuple(sorted((alias, tuple(sorted(mapping.items()))) for alias, mapping in document.aliases.items())))
    return ()


def _metadata_changes(old: SigmaDocument, new: SigmaDocument) -> tuple[str, ...]:
    return tuple(name for name in _METADATA if getattr(old, name) != getattr(new, name))


def compare_entries(old: Entry, new: Entry, old_path: str, new_path: str, corpus: CorpusIndex,
                    with_text_diff: bool = True) -> RuleChange | None:
    """What differs between two versions of one document (None when a reader would see no difference);
    `with_text_diff=False` leaves `text_diff` empty (a rule's history shows the summary alone)."""
    text_changed = old.document.source.raw_text != new.document.source.raw_text
    moved = old_path != new_path
    if not text_changed and not moved and _techniques(old).keys() == _techniques(new).keys():
        return None
    old_indicators, new_indicators = _indicators(old.analysis, corpus), _indicators(new.analysis, corpus)
    old_exclusions, new_exclusions = _exclusions(old.analysis), _exclusions(new.analysis)
    old_techniques, new_techniques = _techniques(old), _techniques(new)
    a, b = old.document, new.document
    change = RuleChange(
        kind="renamed" if moved else "modified",
        slug=new.slug,
        title=b.title,
        document_kind=b.kind,
        rule_id=b.id,
        old_path=old_path,
        new_path=new_path,
        indicators_added=tuple(value for key, value in new_indicators.items() if key not in old_indicators),
        indicators_removed=tuple(value for key, value in old_indicators.items() if key not in new_indicators),
        exclusions_added=tuple(value for key, value in new_exclusions.items() if key not in old_exclusions),
        exclusions_removed=tuple(value for key, value in old_exclusions.items() if key not in new_exclusions),
        techniques_gained=tuple(value for key, value in sorted(new_techniques.items()) if key not in old_techniques),
        techniques_lost=tuple(value for key, value in sorted(old_techniques.items()) if key not in new_techniques),
        level_change=(a.level, b.level) if a.level != b.level else None,
        status_change=(a.status, b.status) if a.status != b.status else None,
        title_change=(a.title, b.title) if a.title != b.title else None,
        metadata_changed=_metadata_changes(a, b) + (("kind",) if a.kind != b.kind else ()),
        logic_changed=_logic(old) != _logic(new),
        text_changed=text_changed,
        text_diff=_text_diff(old.document.source.raw_text, new.document.source.raw_text, old_path, new_path) if text_changed and with_text_diff else "",
    )
    if not moved and not change.modified:
        return None  # comments, formatting or key order only: nothing a reader of the page would see
    return change


#: A rule file's diff on the Changes page is cut after this many lines.
MAX_DIFF_LINES = 400


def _text_diff(old: str, new: str, old_path: str, new_path: str) -> str:
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), old_path, new_path, lineterm="", n=2)
    kept = list(itertools.islice(lines, MAX_DIFF_LINES + 1))
    if len(kept) > MAX_DIFF_LINES:
        kept[MAX_DIFF_LINES:] = ["… (the diff goes on)"]
    return "\n".join(kept)


def _whole(entry: Entry, kind: str, old_path: str | None, new_path: str | None, corpus: CorpusIndex) -> RuleChange:
    """An added or removed document: everything it has is gained or lost."""
    indicators = tuple(_indicators(entry.analysis, corpus).values())
    exclusions = tuple(_exclusions(entry.analysis).values())
    techniques = tuple(value for _, value in sorted(_techniques(entry).items()))
    document = entry.document
    added = kind == "added"
    return RuleChange(
        kind=kind,
        slug=entry.slug,
        title=document.title,
        document_kind=document.kind,
        rule_id=document.id,
        old_path=old_path,
        new_path=new_path,
        indicators_added=indicators if added else (),
        indicators_removed=() if added else indicators,
        exclusions_added=exclusions if added else (),
        exclusions_removed=() if added else exclusions,
        techniques_gained=techniques if added else (),
        techniques_lost=() if added else techniques,
        level_change=(None, document.level) if added else (document.level, None),
        status_change=(None, document.status) if added else (document.status, None),
        text_changed=True,
    )
