"""What a change does to the catalog: the rules it adds, modifies, removes and renames (the result).

`catalog.diff.compute_changes` makes a `ChangeSet`: one `RuleChange` per document that differs
between a base git revision and the working tree, with the indicators, exclusions and ATT&CK
techniques it gains and loses, and the one existing rule it most likely duplicates.
`catalog.site.changes_page` shows it as the Changes page and banners on the changed rule pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

KINDS = ("added", "modified", "renamed", "removed")



class ChangeError(Exception):
    """The base revision cannot be read (unknown ref, not a git repository, ...); one line for people."""


# --- the result ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndicatorChange:
    field: str  # "(keyword)" for field-less values
    kind: str
    value: str
    rules: int = 0  # rules of the head catalog that have it (for a removed one: that still have it)

    def __str__(self) -> str:
        return f"{self.field} {self.kind} {self.value}"


@dataclass(frozen=True, slots=True)
class ExclusionChange:
    identifiers: tuple[str, ...]
    scope: str  # main / optional / filter
    combined: bool
    text: str  # "Image ends_with \\a.exe, \\b.exe", alternatives joined with " or "
    values: tuple[tuple[str, str, str], ...] = ()  # (field, kind, value) of every excluded value, for value-level diffs

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
    score: float = 0.0  # catalog.similarity's score of the pair

    @property
    def ratio(self) -> float:
        return self.shared / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"shares {self.shared} of its {self.total} indicators with '{self.title}' ({self.path}), similarity {self.score:.2f}"


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
    text_diff: str = ""  # unified diff of the rule file's text (modified and renamed documents), bounded
    same_id_as: tuple[str, ...] = ()  # the other files whose documents have this document's id (an error)

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
        same_id = f"; duplicate id: also the id of {', '.join(self.same_id_as)}" if self.same_id_as else ""
        if self.kind in ("added", "removed"):
            return f"{self.kind}{same_id}" + (f"; likely duplicate: {self.likely_duplicate_of}" if self.likely_duplicate_of else "")
        if same_id:
            parts.append(same_id[2:])

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
            "same_id_as": list(self.same_id_as),
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
