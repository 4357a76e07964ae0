"""Analysis of one rule: its stages, its exclusions and its indicators."""

from __future__ import annotations

from dataclasses import dataclass, field

from catalog.conditions import And, Condition, ConditionNode, IdentifierRef, Not, Or, Quantified, conjuncts, references
from catalog.model import Detection, DetectionItem, SearchIdentifier
from catalog.modifiers import parse_modifiers
from catalog.yamltext import to_yaml

#: (field, kind, normalised value): the identity of an indicator across the catalog.
IndicatorKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Stage:
    """Stage 0 is a condition as written; the others are the identifiers it reaches, in order."""

    number: int
    title: str  # "condition", "selection", "not filter"
    text: str | None = None  # the condition, for stage 0
    identifier: SearchIdentifier | None = None
    negated: bool = False
    #: The condition text, or the identifier's definition re-serialised as YAML: made once here,
    #: as the rule page and catalog.json both show it (made in different processes of a build).
    body: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.identifier is None:
            body = self.text or ""
        else:
            body = to_yaml({self.identifier.name: self.identifier.definition})
        object.__setattr__(self, "body", body)  # (frozen)

    @property
    def match_all_fields(self) -> tuple[str, ...]:
        """Fields whose listed values must all match (`|all`)."""
        if self.identifier is None:
            return ()
        return tuple(dict.fromkeys(item.field or "(keyword)" for item in self.identifier.items if item.match_all))


def field_label(field: str | None) -> str:
    """How pages name a field; keywords (values without a field) have none."""
    return field if field is not None else "(keyword)"


@dataclass(slots=True)  # not frozen: created by the hundred thousand, frozen init is slow
class Indicator:
    field: str | None  # None for keywords
    kind: str
    value: str  # as written: numbers keep their form (0x17), spaces around a value are kept
    identifier: str
    match_all: bool
    key: IndicatorKey  # numbers by value (0x17 and 23 are one key); fieldref kinds never equal a literal's
    field_reference: bool = False  # `fieldref`: `value` names another field, it is not a literal

    @property
    def field_label(self) -> str:
        return field_label(self.field)

    @property
    def edge_spaces(self) -> bool:
        return edge_spaces(self.value)


@dataclass(frozen=True, slots=True)
class ExcludedItem:
    """One field test inside an exclusion; its values are sorted, as the reference page shows."""

    field: str | None
    kind: str
    values: tuple[str, ...]
    match_all: bool = False
    field_reference: bool = False  # `fieldref`: the values name other fields, they are not literals

    @property
    def field_label(self) -> str:
        return field_label(self.field)


@dataclass(frozen=True, slots=True)
class ExcludedSearch:
    """One search identifier inside an exclusion: an OR of alternatives, each an AND of items."""

    identifier: str
    alternatives: tuple[tuple[ExcludedItem, ...], ...]


@dataclass(frozen=True, slots=True)
class Exclusion:
    """What one top-level `not` conjunct suppresses.

    Usually one search: an event is excluded when it matches every item of any one alternative.
    Several searches come from `not all of X` / `not (a and b)`: then only events matching all of
    them together are excluded, never the events matching one of them alone.
    """

    searches: tuple[ExcludedSearch, ...]
    scope: str  # "main" (filter_main_*), "optional" (filter_optional_*) or "filter"
    source: str | None = None  # the title of the Sigma filter rule that adds it, None for the condition

    @property
    def identifiers(self) -> tuple[str, ...]:
        return tuple(search.identifier for search in self.searches)

    @property
    def combined(self) -> bool:
        return len(self.searches) > 1

    @property
    def rows(self) -> tuple[tuple[str, str, str], ...]:
        """(field, kind, value) rows that each exclude on their own (one item per alternative)."""
        if self.combined:
            return ()
        return tuple(
            (item.field_label, item.kind, value)
            for alternative in self.searches[0].alternatives
            if len(alternative) == 1 and not alternative[0].match_all
            for item in alternative
            for value in item.values
        )

    @property
    def grouped(self) -> tuple[tuple[ExcludedItem, ...], ...]:
        """Alternatives whose items only exclude together (several fields, or `|all`)."""
        if self.combined:
            return ()
        return tuple(alt for alt in self.searches[0].alternatives if len(alt) > 1 or alt[0].match_all)


@dataclass(frozen=True, slots=True)
class RuleAnalysis:
    stages: tuple[Stage, ...]
    exclusions: tuple[Exclusion, ...]
    indicators: tuple[Indicator, ...]
    aggregations: tuple[str, ...]  # legacy `| count() ...` parts, kept as text
    placeholders: tuple[str, ...]  # `%name%` values that an `expand` leaves to the deployment


def analyse(detection: Detection) -> RuleAnalysis:
    stages: list[Stage] = []
    exclusions: list[Exclusion] = []
    positive: dict[str, None] = {}
    for condition in detection.conditions:
        stages.extend(_stages(condition, detection))
        exclusions.extend(exclusions_of(condition.expression, detection.identifiers))
        for name, negated in references(condition.expression):
            if not negated:
                positive.setdefault(name)
    indicators: dict[IndicatorKey, Indicator] = {}
    placeholders: dict[str, None] = {}
    for name in positive:
        for item in detection.identifiers[name].items:
            for indicator in _indicators(item, name):
                indicators.setdefault(indicator.key, indicator)
                if "expand" in item.modifiers and "%" in indicator.value:
                    placeholders.setdefault(indicator.value)
    return RuleAnalysis(
        stages=tuple(stages),
        exclusions=tuple(_unique(exclusions)),
        indicators=tuple(indicators.values()),
        aggregations=tuple(c.aggregation for c in detection.conditions if c.aggregation),
        placeholders=tuple(placeholders),
    )


def _stages(condition: Condition, detection: Detection) -> list[Stage]:
    stages = [Stage(0, "condition", condition.text)]
    for number, (name, negated) in enumerate(references(condition.expression), start=1):
        stages.append(Stage(number, f"not {name}" if negated else name, None, detection.identifiers[name], negated))
    return stages


def exclusions_of(expression: ConditionNode, identifiers: dict[str, SearchIdentifier], source: str | None = None) -> list[Exclusion]:
    """The exclusions of the top-level `not` conjuncts of a condition expression (ANDs flattened)."""
    found: list[Exclusion] = []
    for conjunct in conjuncts(expression):
        if isinstance(conjunct, Not):
            found.extend(_negated(conjunct.operand, identifiers, source))
    return found


def _negated(node: ConditionNode, identifiers: dict[str, SearchIdentifier], source: str | None) -> list[Exclusion]:
    """`not node` as exclusions; De Morgan splits ORs, ANDs stay one combined exclusion."""
    if isinstance(node, IdentifierRef):
        return [_exclusion((node.name,), identifiers, source)]
    if isinstance(node, Quantified):
        if node.is_any:
            return [_exclusion((name,), identifiers, source) for name in node.identifiers]
        return [_exclusion(node.identifiers, identifiers, source)]
    if isinstance(node, Or):
        return [exclusion for operand in node.operands for exclusion in _negated(operand, identifiers, source)]
    if isinstance(node, And):
        return [_exclusion(tuple(dict.fromkeys(name for name, _ in references(node))), identifiers, source)]
    return []  # `not not x` is a positive test, not an exclusion


def _exclusion(names: tuple[str, ...], identifiers: dict[str, SearchIdentifier], source: str | None) -> Exclusion:
    scopes = {_scope(name) for name in names}
    searches = tuple(
        ExcludedSearch(name, tuple(tuple(_excluded_item(item) for item in alternative) for alternative in identifiers[name].alternatives))
        for name in names
    )
    return Exclusion(searches, scopes.pop() if len(scopes) == 1 else "filter", source)


def _scope(name: str) -> str:
    lowered = name.lower()
    if lowered.startswith("filter_main"):
        return "main"
    if lowered.startswith("filter_optional"):
        return "optional"
    return "filter"


def _excluded_item(item: DetectionItem) -> ExcludedItem:
    chain = parse_modifiers(item.modifiers)
    kinds = dict.fromkeys(chain.kind(value, item.field is None) for value in item.values)
    values = sorted((value_text(value) for value in item.values), key=lambda text: (text.casefold(), text))
    kind = " / ".join(kinds) or chain.kind("", item.field is None)
    return ExcludedItem(item.field, kind, tuple(values), chain.match_all, chain.field_reference)


def _indicators(item: DetectionItem, identifier: str) -> list[Indicator]:
    chain = parse_modifiers(item.modifiers)
    keyword = item.field is None
    field_key = item.field if item.field is not None else ""
    found = []
    for value in item.values:
        kind = chain.kind(value, keyword)
        text = value_text(value)
        if isinstance(value, str) or not _is_number(value):  # strings first: nearly every value is one
            lowered = text if chain.case_sensitive else text.lower()
            normalised = text if lowered == text else lowered  # one string, not two equal ones
        else:
            normalised = _number_key(value)
        found.append(Indicator(item.field, kind, text, identifier, chain.match_all, (field_key, kind, normalised), chain.field_reference))
    return found


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_key(value: int | float) -> str:
    """Numbers are counted by value: `0x17`, `023`-style forms and `23` are one indicator."""
    if isinstance(value, float) and not value.is_integer():
        return repr(float(value))
    return str(int(value))


def is_field_reference(key: IndicatorKey) -> bool:
    """Whether an indicator key is a `fieldref` comparison (its value names a field, not a literal)."""
    return key[1] == "fieldref" or key[1].startswith("fieldref,")


def edge_spaces(text: str) -> bool:
    """Whether a value starts or ends with white space (kept exactly; pages make it visible)."""
    return text != text.strip()


def value_text(value: object) -> str:
    """A Sigma value as text, as YAML writes it (null, true, false; numbers as written)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unique(exclusions: list[Exclusion]) -> list[Exclusion]:
    """A list of conditions may exclude the same identifier twice: show it once."""
    return list(dict.fromkeys(exclusions))
