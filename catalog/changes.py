"""What a change does to the catalog: the rules it adds, modifies, removes and renames.

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

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from catalog.analysis import Exclusion, ExcludedItem, RuleAnalysis
from catalog.model import CorrelationRule, FilterRule, Rule, SigmaDocument, display_path
from catalog.pipeline import Catalog, Entry, build_catalog

if TYPE_CHECKING:
    from catalog.attack import AttackKnowledge

KINDS = ("added", "modified", "renamed", "removed")

#: A new or changed rule is a likely duplicate of another rule when it shares at least this many
#: of its indicators with it, and at least this share of them.
DUPLICATE_MIN_SHARED = 3
DUPLICATE_MIN_RATIO = 0.6

#: Metadata compared between the two sides, besides title, level and status (which have fields).
_METADATA = ("id", "name", "description", "author", "date", "modified", "license", "references", "tags", "falsepositives", "related", "fields")


class ChangeError(Exception):
    """The base revision cannot be read (unknown ref, not a git repository, ...); one line for people."""


# --- the result ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndicatorChange:
    field: str  # "(keyword)" for field-less values
    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.field} {self.kind} {self.value}"


@dataclass(frozen=True, slots=True)
class ExclusionChange:
    identifiers: tuple[str, ...]
    scope: str  # main / optional / filter
    combined: bool
    text: str  # "Image ends_with \\a.exe, \\b.exe", alternatives joined with " or "

    def __str__(self) -> str:
        return f"not {' and '.join(self.identifiers) if self.combined else ', '.join(self.identifiers)}: {self.text}"


@dataclass(frozen=True, slots=True)
class TechniqueChange:
    id: str
    name: str
    url: str = ""

    def __str__(self) -> str:
        return f"{self.id} {self.name}"


@dataclass(frozen=True, slots=True)
class DuplicateHint:
    """The one other rule that shares most of this rule's indicators."""

    slug: str
    title: str
    path: str
    shared: int  # indicators both rules have
    total: int  # indicators of the new or changed rule
    is_new: bool = False  # the other rule is itself added by this change

    @property
    def ratio(self) -> float:
        return self.shared / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"shares {self.shared} of its {self.total} indicators with '{self.title}' ({self.path})"


@dataclass(frozen=True, slots=True)
class RuleChange:
    kind: str  # added, modified, renamed (maybe modified too), removed
    slug: str  # the page of the head side; the base side's slug for a removed rule
    title: str
    document_kind: str  # rule, correlation, filter
    rule_id: str | None
    old_path: str | None  # display path (folder as configured + path inside it), document number when several
    new_path: str | None
    indicators_added: tuple[IndicatorChange, ...] = ()
    indicators_removed: tuple[IndicatorChange, ...] = ()
    exclusions_added: tuple[ExclusionChange, ...] = ()
    exclusions_removed: tuple[ExclusionChange, ...] = ()
    techniques_gained: tuple[TechniqueChange, ...] = ()
    techniques_lost: tuple[TechniqueChange, ...] = ()
    level_change: tuple[str | None, str | None] | None = None
    status_change: tuple[str | None, str | None] | None = None
    title_change: tuple[str, str] | None = None
    metadata_changed: tuple[str, ...] = ()  # other metadata fields that differ (description, tags, ...)
    logic_changed: bool = False  # condition or search identifiers differ (also when no indicator does)
    text_changed: bool = False  # the rule's text differs (a rename may move it unchanged)
    likely_duplicate_of: DuplicateHint | None = None

    @property
    def has_page(self) -> bool:
        return self.kind != "removed"

    @property
    def modified(self) -> bool:
        """Something besides the path differs."""
        return bool(
            self.indicators_added or self.indicators_removed or self.exclusions_added or self.exclusions_removed
            or self.techniques_gained or self.techniques_lost or self.level_change or self.status_change
            or self.title_change or self.metadata_changed or self.logic_changed
        )

    def summary(self) -> str:
        """One line for a banner or a log: "2 indicators added, level high -> critical"."""
        parts: list[str] = []
        if self.kind == "renamed" and self.old_path:
            parts.append(f"moved from {self.old_path}")
        if self.kind in ("added", "removed"):
            return f"{self.kind}" + (f"; likely duplicate: {self.likely_duplicate_of}" if self.likely_duplicate_of else "")

        def count(items: Sequence, what: str, verb: str) -> None:
            if items:
                parts.append(f"{len(items)} {what}{'s' if len(items) != 1 else ''} {verb}")

        count(self.indicators_added, "indicator", "added")
        count(self.indicators_removed, "indicator", "removed")
        count(self.exclusions_added, "exclusion", "added")
        count(self.exclusions_removed, "exclusion", "removed")
        count(self.techniques_gained, "ATT&CK technique", "gained")
        count(self.techniques_lost, "ATT&CK technique", "lost")
        for label, change in (("title", self.title_change), ("level", self.level_change), ("status", self.status_change)):
            if change:
                parts.append(f"{label} {change[0] or '(none)'} → {change[1] or '(none)'}")
        if self.logic_changed and not (self.indicators_added or self.indicators_removed or self.exclusions_added or self.exclusions_removed):
            parts.append("detection logic changed")
        if self.metadata_changed:
            parts.append("changed: " + ", ".join(self.metadata_changed))
        if self.likely_duplicate_of:
            parts.append(f"likely duplicate: {self.likely_duplicate_of}")
        return "; ".join(parts) or "text changed"

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "slug": self.slug,
            "title": self.title,
            "document_kind": self.document_kind,
            "id": self.rule_id,
            "old_path": self.old_path,
            "new_path": self.new_path,
            "indicators_added": [_plain(item) for item in self.indicators_added],
            "indicators_removed": [_plain(item) for item in self.indicators_removed],
            "exclusions_added": [_plain(item) for item in self.exclusions_added],
            "exclusions_removed": [_plain(item) for item in self.exclusions_removed],
            "techniques_gained": [_plain(item) for item in self.techniques_gained],
            "techniques_lost": [_plain(item) for item in self.techniques_lost],
            "level_change": list(self.level_change) if self.level_change else None,
            "status_change": list(self.status_change) if self.status_change else None,
            "title_change": list(self.title_change) if self.title_change else None,
            "metadata_changed": list(self.metadata_changed),
            "logic_changed": self.logic_changed,
            "text_changed": self.text_changed,
            "likely_duplicate_of": _plain(self.likely_duplicate_of) if self.likely_duplicate_of else None,
            "summary": self.summary(),
        }


def _plain(item: object) -> dict:
    return {name: list(value) if isinstance(value, tuple) else value for name in item.__slots__ for value in [getattr(item, name)]}


@dataclass(slots=True)
class ChangeSet:
    base_ref: str  # as given (origin/main)
    base_commit: str  # the commit compared against (the merge base, unless there was none)
    changes: list[RuleChange] = field(default_factory=list)
    merge_base: bool = False  # base_commit is the merge base of base_ref and HEAD
    base_problems: int = 0  # errors + warnings on the base side
    head_problems: int = 0
    new_problems: list = field(default_factory=list)  # problems in the head catalog that the base did not have

    def of_kind(self, kind: str) -> list[RuleChange]:
        return [change for change in self.changes if change.kind == kind]

    @property
    def added(self) -> list[RuleChange]:
        return self.of_kind("added")

    @property
    def modified(self) -> list[RuleChange]:
        return self.of_kind("modified")

    @property
    def renamed(self) -> list[RuleChange]:
        return self.of_kind("renamed")

    @property
    def removed(self) -> list[RuleChange]:
        return self.of_kind("removed")

    @property
    def duplicates(self) -> list[RuleChange]:
        return [change for change in self.changes if change.likely_duplicate_of is not None]

    @property
    def short_commit(self) -> str:
        return self.base_commit[:12]

    def by_slug(self) -> dict[str, RuleChange]:
        """The change of each head page (removed rules have none)."""
        return {change.slug: change for change in self.changes if change.has_page}

    def counts(self) -> dict[str, int]:
        return {kind: len(self.of_kind(kind)) for kind in KINDS}

    def to_json(self) -> dict:
        return {
            "base_ref": self.base_ref,
            "base_commit": self.base_commit,
            "merge_base": self.merge_base,
            "counts": self.counts(),
            "changes": [change.to_json() for change in self.changes],
            "new_problems": [problem.to_json() for problem in self.new_problems],
        }


# --- git ----------------------------------------------------------------------------------


def _git(args: Sequence[str], cwd: str | os.PathLike, input: bytes | None = None) -> bytes:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=cwd, input=input, capture_output=True, check=False, timeout=600,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except FileNotFoundError as error:
        raise ChangeError("git is not installed") from error
    except subprocess.TimeoutExpired as error:
        raise ChangeError(f"git {args[0]} took too long") from error
    if completed.returncode != 0:
        message = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ChangeError(f"git {' '.join(args[:2])} failed: {message[-1] if message else 'exit ' + str(completed.returncode)}")
    return completed.stdout


def repository_root(path: str | os.PathLike) -> Path:
    """The top folder of the git work tree that holds `path`."""
    start = Path(path)
    probe = start if start.is_dir() else start.parent
    while not probe.exists() and probe != probe.parent:  # a folder the change deleted
        probe = probe.parent
    try:
        top = _git(["rev-parse", "--show-toplevel"], probe).decode("utf-8").strip()
    except ChangeError as error:
        raise ChangeError(f"{os.fspath(path)} is not inside a git repository ({error})") from None
    return Path(top)


def resolve_revision(repo: str | os.PathLike, ref: str, merge_base: bool = True) -> tuple[str, bool]:
    """(full commit id, whether it is the merge base with HEAD); ChangeError for an unknown ref."""
    if not ref or ref.startswith("-"):
        raise ChangeError(f"'{ref}' is not a git revision")
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], repo).decode().strip()
    except ChangeError:
        raise ChangeError(
            f"unknown git revision '{ref}': it is not in this clone (in CI, check out with fetch-depth: 0 "
            f"so the base branch is there; locally, git fetch it first)"
        ) from None
    if merge_base:
        try:
            base = _git(["merge-base", commit, "HEAD"], repo).decode().strip()
        except ChangeError:  # no common history here (shallow clone, unrelated HEAD): compare with the ref itself
            return commit, False
        if base:
            return base, True
    return commit, False


def export_revision(repo: Path, commit: str, paths: Sequence[str], target: Path) -> None:
    """Write the files under `paths` (relative to `repo`) as they are in `commit` into `target`.

    Read from git's object store (`ls-tree` + `cat-file --batch`): no checkout, no worktree, no
    `.gitattributes` export filters. Symbolic links are recreated after every file is written, so
    nothing is written through one; submodules are skipped.
    """
    existing = [path for path in paths if path in ("", ".") or _git(["ls-tree", commit, "--", path], repo).strip()]
    if not existing:
        return
    listing = _git(["ls-tree", "-r", "-z", "--full-tree", commit, "--", *[p if p not in ("", ".") else "." for p in existing]], repo)
    blobs: list[tuple[str, str, str]] = []  # (mode, sha, path)
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, sha = meta.decode().split()
        if kind != "blob":
            continue
        blobs.append((mode, sha, raw_path.decode("utf-8", "surrogateescape")))
    if not blobs:
        return
    output = _git(["cat-file", "--batch"], repo, input="".join(f"{sha}\n" for _, sha, _ in blobs).encode())
    real_target = target.resolve()
    links: list[tuple[Path, str]] = []
    offset = 0
    for mode, sha, path in blobs:
        header_end = output.index(b"\n", offset)
        size = int(output[offset:header_end].split()[2])
        content = output[header_end + 1 : header_end + 1 + size]
        offset = header_end + 1 + size + 1
        parts = Path(path).parts
        if not parts or ".." in parts or Path(path).is_absolute():
            continue
        destination = target.joinpath(*parts)
        if mode == "120000":
            links.append((destination, content.decode("utf-8", "surrogateescape")))
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        if not destination.parent.resolve().is_relative_to(real_target):
            continue
        with open(destination, "xb") as out:
            out.write(content)
    # Links last, so no file is ever written through one. They are recreated as they are (the
    # loader refuses to read those that lead out of the rule folder, as it does on the head side).
    for destination, link_target in links:
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.parent.resolve().is_relative_to(real_target) and not destination.exists():
            os.symlink(link_target, destination)


def source_date_epoch(path: str | os.PathLike) -> int | None:
    """The committer time of HEAD in the repository holding `path`, for SOURCE_DATE_EPOCH; None outside git."""
    try:
        text = _git(["log", "-1", "--format=%ct"], path).decode().strip()
    except ChangeError:
        return None
    return int(text) if text.isdigit() else None


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
    repo = repository_root(root_texts[0])
    commit, is_merge_base = resolve_revision(repo, base_ref, merge_base)
    real_repo = repo.resolve()
    inside: list[str] = []
    for root in root_texts:
        real = Path(os.path.realpath(root))
        if not real.is_relative_to(real_repo):
            raise ChangeError(f"the rule folder {root} is outside the git repository {repo}")
        inside.append(real.relative_to(real_repo).as_posix())
    if head is None:
        head = build_catalog(root_texts, attack=attack)
    with tempfile.TemporaryDirectory(prefix="sigma-catalog-base-") as temporary:
        export = Path(temporary) / "tree"
        export.mkdir()
        export_revision(repo, commit, inside, export)
        base_roots = []
        for relative in inside:
            base_root = export / relative if relative not in ("", ".") else export
            if not base_root.exists():
                base_root.mkdir(parents=True, exist_ok=True)  # the folder is new: everything in it is added
            base_roots.append(str(base_root))
        base = build_catalog(base_roots, attack=attack)
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
    pairs: list[tuple[Entry, Entry]] = []
    unmatched_base = {id(entry): entry for entry in base.entries}
    unmatched_head = {id(entry): entry for entry in head.entries}

    def pair(old: Entry, new: Entry) -> None:
        pairs.append((old, new))
        del unmatched_base[id(old)]
        del unmatched_head[id(new)]

    # 1. by rule id (the first document with an id on each side; duplicates fall through to paths)
    base_by_id: dict[str, Entry] = {}
    for entry in base.entries:
        key = (entry.document.id or "").strip().lower()
        if key:
            base_by_id.setdefault(key, entry)
    seen_head_ids: set[str] = set()
    for entry in head.entries:
        key = (entry.document.id or "").strip().lower()
        if not key or key in seen_head_ids:
            continue
        seen_head_ids.add(key)
        old = base_by_id.get(key)
        if old is not None and id(old) in unmatched_base:
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

    changes: list[RuleChange] = []
    for old, new in pairs:
        change = _compare(old, new, base_location[id(old)], head_location[id(new)])
        if change is not None:
            changes.append(change)
    for entry in unmatched_head.values():
        changes.append(_whole(entry, "added", None, head_location[id(entry)]))
    for entry in unmatched_base.values():
        changes.append(_whole(entry, "removed", base_location[id(entry)], None))

    # likely duplicates, for what a reviewer is asked to accept: new and changed rules
    new_slugs = {change.slug for change in changes if change.kind == "added"}
    by_slug = head.by_slug()
    finished: list[RuleChange] = []
    for change in changes:
        if change.kind in ("added", "modified", "renamed") and change.slug in by_slug:
            hint = likely_duplicate(by_slug[change.slug], head, new_slugs, head_location, by_slug)
            if hint is not None:
                change = _replace(change, likely_duplicate_of=hint)
        finished.append(change)
    order = {kind: index for index, kind in enumerate(KINDS)}
    finished.sort(key=lambda change: (order[change.kind], change.title.casefold(), change.new_path or change.old_path or "", change.slug))
    return finished


def _replace(change: RuleChange, **values) -> RuleChange:
    from dataclasses import replace

    return replace(change, **values)


def likely_duplicate(
    entry: Entry,
    catalog: Catalog,
    new_slugs: set[str] = frozenset(),
    locations: dict[int, str] | None = None,
    by_slug: dict[str, Entry] | None = None,
) -> DuplicateHint | None:
    """The other rule sharing most of `entry`'s indicators, when it shares enough (see the constants).

    One pass over the rule's own indicators through the corpus index: no pairwise comparison.
    """
    if entry.analysis is None or not isinstance(entry.document, Rule):
        return None
    keys = {indicator.key for indicator in entry.analysis.indicators}
    if len(keys) < DUPLICATE_MIN_SHARED:
        return None
    shared: dict[str, int] = {}
    for key in keys:
        for slug in catalog.corpus.sharing(key):
            if slug != entry.slug:
                shared[slug] = shared.get(slug, 0) + 1
    if not shared:
        return None
    slug, count = min(shared.items(), key=lambda item: (-item[1], item[0]))
    if count < DUPLICATE_MIN_SHARED or count / len(keys) < DUPLICATE_MIN_RATIO:
        return None
    other = (by_slug if by_slug is not None else catalog.by_slug()).get(slug)
    if other is None:
        return None
    path = (locations or {}).get(id(other)) or _location(other, {})
    return DuplicateHint(slug, other.document.title, path, count, len(keys), slug in new_slugs)


def _indicators(analysis: RuleAnalysis | None) -> dict[tuple, IndicatorChange]:
    if analysis is None:
        return {}
    return {indicator.key: IndicatorChange(indicator.field_label, indicator.kind, indicator.value) for indicator in analysis.indicators}


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
    return ExclusionChange(exclusion.identifiers, exclusion.scope, exclusion.combined, text)


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


def _compare(old: Entry, new: Entry, old_path: str, new_path: str) -> RuleChange | None:
    text_changed = old.document.source.raw_text != new.document.source.raw_text
    moved = old_path != new_path
    if not text_changed and not moved and _techniques(old).keys() == _techniques(new).keys():
        return None
    old_indicators, new_indicators = _indicators(old.analysis), _indicators(new.analysis)
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
    )
    if not moved and not change.modified:
        return None  # comments, formatting or key order only: nothing a reader of the page would see
    return change


def _whole(entry: Entry, kind: str, old_path: str | None, new_path: str | None) -> RuleChange:
    """An added or removed document: everything it has is gained or lost."""
    indicators = tuple(_indicators(entry.analysis).values())
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


def format_text(changes: ChangeSet) -> Iterable[str]:
    """A plain-text report (for logs and the command line)."""
    counts = changes.counts()
    yield (
        f"Changes against {changes.base_ref} ({changes.short_commit}{', merge base' if changes.merge_base else ''}): "
        + ", ".join(f"{counts[kind]} {kind}" for kind in KINDS)
    )
    for change in changes.changes:
        where = change.new_path or change.old_path
        yield f"  {change.kind:<8} {change.title} ({where}): {change.summary()}"


# --- the site: a Changes page and banners on the changed rule pages ------------------------

#: At most this many items of one list (indicators added, ...) are shown per rule on the page.
PAGE_LIST_LIMIT = 200
CHANGES_PATH = "changes/"


def page_context(changes: ChangeSet, display_problem=None, technique_path=None) -> dict:
    """The Changes page's template data: plain lists and dicts (`templates/changes.html`)."""
    display_problem = display_problem or (lambda path: path)

    def limited(items: Sequence, convert) -> dict:
        return {"items": [convert(item) for item in items[:PAGE_LIST_LIMIT]], "more": max(0, len(items) - PAGE_LIST_LIMIT)}

    def indicator(item: IndicatorChange) -> dict:
        return {"field": item.field, "kind": item.kind, "value": item.value}

    def exclusion(item: ExclusionChange) -> dict:
        return {"label": (" and " if item.combined else ", ").join(item.identifiers), "scope": item.scope, "text": item.text}

    def technique(item: TechniqueChange) -> dict:
        return {"id": item.id, "name": item.name, "path": technique_path(item.id) if technique_path else None, "url": item.url}

    sections = []
    titles = {"added": "Added", "modified": "Modified", "renamed": "Renamed or moved", "removed": "Removed"}
    for kind in KINDS:
        rows = []
        for change in changes.of_kind(kind):
            duplicate = change.likely_duplicate_of
            rows.append({
                "title": change.title,
                "path": f"rules/{change.slug}/" if change.has_page else None,
                "document_kind": change.document_kind,
                "id": change.rule_id or "",
                "old_path": change.old_path or "",
                "new_path": change.new_path or "",
                "summary": change.summary(),
                "level": list(change.level_change) if change.level_change else None,
                "status": list(change.status_change) if change.status_change else None,
                "title_change": list(change.title_change) if change.title_change else None,
                "metadata": list(change.metadata_changed),
                "logic_changed": change.logic_changed,
                "indicators_added": limited(change.indicators_added, indicator),
                "indicators_removed": limited(change.indicators_removed, indicator),
                "exclusions_added": limited(change.exclusions_added, exclusion),
                "exclusions_removed": limited(change.exclusions_removed, exclusion),
                "techniques_gained": limited(change.techniques_gained, technique),
                "techniques_lost": limited(change.techniques_lost, technique),
                "duplicate": None if duplicate is None else {
                    "title": duplicate.title,
                    "path": f"rules/{duplicate.slug}/",
                    "file": duplicate.path,
                    "shared": duplicate.shared,
                    "total": duplicate.total,
                    "percent": round(100 * duplicate.ratio),
                    "is_new": duplicate.is_new,
                },
            })
        sections.append({"kind": kind, "title": titles[kind], "changes": rows})
    problems = [
        {"location": f"{display_problem(p.path)}:{p.line}" if p.line else display_problem(p.path), "severity": p.severity.value,
         "message": p.message, "code": p.code}
        for p in changes.new_problems[:PAGE_LIST_LIMIT * 5]
    ]
    return {
        "base_ref": changes.base_ref,
        "base_commit": changes.base_commit,
        "short_commit": changes.short_commit,
        "merge_base": changes.merge_base,
        "counts": changes.counts(),
        "total": len(changes.changes),
        "sections": sections,
        "duplicates": len(changes.duplicates),
        "new_problems": problems,
        "new_problems_more": max(0, len(changes.new_problems) - len(problems)),
    }


def banner(change: RuleChange) -> dict:
    """The banner a changed rule's page carries (`rule.html` shows banners as admonitions)."""
    see = " The Changes page lists every change of this pull request."
    if change.kind == "added":
        text = "This rule is new in this pull request."
        if change.likely_duplicate_of is not None:
            text += f" Likely duplicate: it {change.likely_duplicate_of}."
        return {"kind": "change-new", "title": "New in this pull request", "text": text + see}
    return {"kind": "change-modified", "title": "Changed in this pull request", "text": change.summary() + "." + see}


def add_to_site(site, changes: ChangeSet, display_problem=None) -> None:
    """Put the Changes page into the site's browse pages and a banner on each changed rule page.

    `site` is a `catalog.site.pages.Site`; imported lazily so this module works without the site.
    """
    from catalog.site.pages import Page, technique_slug

    known = {page.path for page in site.pages}

    def technique_path(technique_id: str) -> str | None:
        path = f"techniques/{technique_slug(technique_id)}/"
        return path if path in known else None

    context = page_context(changes, display_problem, technique_path)
    position = next((index + 1 for index, page in enumerate(site.browse) if page.path == "find/"), 0)
    site.browse.insert(position, Page(CHANGES_PATH, "Changes", "changes.html", context, src_uri=CHANGES_PATH + "index.md",
                                      nav_title=f"Changes ({len(changes.changes)})"))
    by_path = {page.path: page for page in site.pages}
    for change in changes.changes:
        page = by_path.get(f"rules/{change.slug}/") if change.has_page else None
        if page is not None and isinstance(page.context.get("banners"), list):
            page.context["banners"].insert(0, banner(change))
