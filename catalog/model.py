"""The rule model: one typed object per Sigma concept, built by `catalog.loader` from YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from catalog.conditions import Condition

#: A value as Sigma writes it after YAML: strings, numbers, booleans and null.
Scalar = Union[str, int, float, bool, None]


@dataclass(slots=True)  # not frozen: frozen dataclasses are slow to create, and there are many
class DetectionItem:
    """One `Field|mod|mod: values` entry of a search identifier; `field` is None for keywords."""

    field: str | None
    modifiers: tuple[str, ...]
    values: tuple[Scalar, ...]
    line: int
    column: int

    @property
    def match_all(self) -> bool:
        """`|all` turns the value list from an OR into an AND."""
        return "all" in self.modifiers


@dataclass(frozen=True, slots=True)
class SearchIdentifier:
    """A named search of `detection:`; matches when any alternative matches all of its items."""

    name: str
    alternatives: tuple[tuple[DetectionItem, ...], ...]
    definition: object  # the YAML value as loaded, re-serialised for the Stages section
    line: int
    column: int

    @property
    def items(self) -> tuple[DetectionItem, ...]:
        return tuple(item for alternative in self.alternatives for item in alternative)


# Compared by identity: its analysis is remembered per object (catalog.pipeline), so a rule file
# that mkdocs serve did not re-read is not analysed again.
@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class Detection:
    identifiers: dict[str, SearchIdentifier]
    conditions: tuple[Condition, ...]
    timeframe: str | None = None


@dataclass(frozen=True, slots=True)
class LogSource:
    """A rule's log source. A field written as a list (`category: [a, b]`) is shown joined
    (`a, b`); `each` gives the single log sources it stands for, to list the rule under each."""

    product: str | None = None
    category: str | None = None
    service: str | None = None
    definition: str | None = None
    listed: tuple["LogSource", ...] = ()  # one per combination of listed values; empty when none is a list

    @property
    def label(self) -> str:
        return " / ".join(part for part in (self.product, self.category, self.service) if part) or "any"

    @property
    def each(self) -> tuple["LogSource", ...]:
        return self.listed or (self,)

    def covers(self, other: "LogSource") -> bool:
        """Whether a filter on this log source applies to a rule on `other` (unset fields match all)."""
        return any(
            all(mine is None or mine == theirs for mine, theirs in ((a.product, b.product), (a.category, b.category), (a.service, b.service)))
            for a in self.each
            for b in other.each
        )


@dataclass(frozen=True, slots=True)
class RelatedRule:
    id: str
    type: str


@dataclass(frozen=True, slots=True)
class RuleSource:
    """Where a document came from: the rule folder, the file inside it and the document in the file."""

    root: str  # the rule folder as configured
    path: str  # posix path of the file relative to `root`
    document: int  # 0-based index of the YAML document in the file
    line: int  # first line of the document
    raw_text: str  # the document's own text, byte for byte (the whole file for one-document files)
    documents_in_file: int = 1

    @property
    def file_display(self) -> str:
        return display_path(self.root, self.path)

    @property
    def display_path(self) -> str:
        base = self.file_display
        return base if self.documents_in_file == 1 else f"{base} (document {self.document + 1})"


def display_path(root: str, relative: str) -> str:
    """How problems and pages name a file: the rule folder as configured, then the path inside it."""
    return f"{root.rstrip('/')}/{relative}" if root not in ("", ".") else relative


@dataclass(frozen=True, slots=True)
class Simulation:
    """One `simulation:` entry (SigmaHQ's convention): a test that should make the rule fire."""

    type: str | None = None  # e.g. atomic-red-team
    name: str | None = None
    technique: str | None = None
    atomic_guid: str | None = None


#: Rule formats the loader recognises; `Rule.dialect` says which one a document is written in.
SIGMA = "sigma"
HAYABUSA = "hayabusa"
#: Each format's name as pages show it (the rule page's breadcrumb).
DIALECT_NAMES = {SIGMA: "Sigma", HAYABUSA: "Hayabusa"}


@dataclass(slots=True, kw_only=True)
class SigmaDocument:
    """What every Sigma document carries: metadata shown on its page."""

    source: RuleSource
    title: str
    id: str | None = None
    name: str | None = None
    status: str | None = None
    level: str | None = None
    description: str | None = None
    author: str | None = None
    date: str | None = None
    modified: str | None = None
    license: str | None = None
    references: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    falsepositives: tuple[str, ...] = ()
    related: tuple[RelatedRule, ...] = ()
    fields: tuple[str, ...] = ()
    regression_tests_path: str | None = None
    simulation: tuple[Simulation, ...] = ()
    dialect: str = SIGMA  # HAYABUSA for Hayabusa's own format (`ruletype: Hayabusa`, `details:`)
    id_position: tuple[int, int] | None = None  # line, column of the id's value
    name_position: tuple[int, int] | None = None  # line, column of the name's value
    tag_positions: tuple[tuple[int, int], ...] = ()  # line, column of each of `tags`, in order

    kind = "rule"

    def tag_position(self, tag: str) -> tuple[int, int] | None:
        """Where `tag` (compared without case and surrounding spaces) is written, if it is."""
        wanted = tag.strip().lower()
        for written, position in zip(self.tags, self.tag_positions):
            if written.strip().lower() == wanted:
                return position
        return None


@dataclass(slots=True, kw_only=True)
class Rule(SigmaDocument):
    """A detection rule: a log source, search identifiers and a condition."""

    logsource: LogSource = field(default_factory=LogSource)
    detection: Detection

    kind = "rule"


@dataclass(frozen=True, slots=True)
class CorrelationCondition:
    """`condition:` of a correlation: an operator and a threshold, over `field` for the value_* types."""

    operators: tuple[tuple[str, int], ...]  # e.g. (("gte", 10),), several form a range
    field: str | None = None
    percentile: int | None = None  # value_percentile: which percentile of `field` is compared

    @property
    def text(self) -> str:
        bounds = " and ".join(f"{op} {value}" for op, value in self.operators)
        measured = f"percentile {self.percentile} of {self.field}" if self.percentile is not None and self.field else self.field
        return f"{measured} {bounds}" if measured else bounds


@dataclass(slots=True, kw_only=True)
class CorrelationRule(SigmaDocument):
    """Sigma 2 correlation: events of other rules counted or ordered over a time span."""

    type: str
    rules: tuple[str, ...]  # referenced rules, by id or name
    group_by: tuple[str, ...] = ()
    timespan: str | None = None
    condition: CorrelationCondition | None = None
    generate: bool = False
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)

    kind = "correlation"


@dataclass(slots=True, kw_only=True)
class FilterRule(SigmaDocument):
    """Sigma 2 filter: extra exclusions applied to the rules it names."""

    rules: tuple[str, ...]  # empty when `any_rule`
    logsource: LogSource = field(default_factory=LogSource)
    detection: Detection
    any_rule: bool = False  # `rules: any` (or an empty list): every rule of a matching log source

    kind = "filter"
