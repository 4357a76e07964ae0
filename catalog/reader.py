"""Reading one YAML map into a typed Sigma document (rule, correlation or filter).

Type errors raise `RuleError` (the document has no page); doubts become warnings that ride along
with a document that still loads. `catalog.loader` finds the files and documents this reads.
"""

from __future__ import annotations

import re
import uuid
from typing import Iterable, Sequence

from catalog.conditions import ConditionError, Condition, parse_condition, references
from catalog.model import (
    HAYABUSA,
    SIGMA,
    CorrelationCondition,
    CorrelationRule,
    Detection,
    DetectionItem,
    FilterRule,
    LogSource,
    RelatedRule,
    Rule,
    RuleSource,
    Scalar,
    SearchIdentifier,
    SigmaDocument,
    Simulation,
)
from catalog.modifiers import parse_modifiers
from catalog.problems import Code, Severity
from catalog.typedfields import FieldReader, describe
from catalog.yamlsafe import YamlList, YamlMap, plain

STATUSES = {"stable", "test", "experimental", "deprecated", "unsupported"}
LEVELS = {"informational", "low", "medium", "high", "critical"}
CORRELATION_TYPES = {"event_count", "value_count", "temporal", "temporal_ordered", "value_sum", "value_avg", "value_percentile", "value_median"}
#: Correlation types that compare a value of `condition.field` (Sigma 2.1 added sum, avg, percentile).
VALUE_CORRELATIONS = {"value_count", "value_sum", "value_avg", "value_percentile", "value_median"}
CORRELATION_OPERATORS = {"gt", "gte", "lt", "lte", "eq", "neq"}
RELATION_TYPES = {"derived", "obsolete", "merged", "renamed", "similar"}
_TIMESPAN = re.compile(r"^\d+[smhdwMy]$")
_IDENTIFIER_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _position_in_scalar(lines: Sequence[str], start: tuple[int, int], value: str, offset: int) -> tuple[int, int]:
    """Line and column of character `offset` of a text value written at `start` (1-based).

    Quotes, block indicators and line folding change only whitespace around the words, so the
    place is found by counting the non-blank characters before `offset` in the value and in the
    source. An offset at the end of the value points just after its last character.
    """
    line, column = start[0] - 1, start[1] - 1
    if not 0 <= line < len(lines):
        return start[0], start[1] + offset
    if not value.strip():
        return start
    opening = lines[line][column : column + 1]
    if opening in ("'", '"'):
        column += 1
    elif opening in ("|", ">"):
        line, column = line + 1, 0
    wanted = sum(1 for char in value[:offset] if not char.isspace())
    at_end = not value[offset:].strip()
    if at_end:
        wanted -= 1  # find the last character, then step past it
    last = (line, column - 1)
    while line < len(lines):
        text = lines[line]
        while column < len(text):
            if not text[column].isspace():
                if wanted <= 0:
                    return (line + 1, column + 2) if at_end else (line + 1, column + 1)
                wanted -= 1
                last = (line, column)
            column += 1
        line, column = line + 1, 0
    return last[0] + 1, last[1] + 2


class DocumentReader(FieldReader):
    """Reads one YAML map into a typed document; type errors raise RuleError, doubts become warnings."""

    # -- documents ---------------------------------------------------------------------------

    def document(self, data: YamlMap, source: RuleSource) -> SigmaDocument:
        common = self.common(data, source)
        section = self.sigma2_section(data)
        if section == "correlation":
            return self.correlation(data, common)
        if section == "filter":
            return self.filter(data, common)
        if "detection" not in data:
            raise self.fail((data.line, data.column), Code.MISSING_FIELD, "the required field 'detection' is missing (a Sigma 2 document has 'correlation' or 'filter' instead)")
        return Rule(**common, logsource=self.logsource(data), detection=self.detection(self.mapping(data, "detection", True), "detection"))

    def sigma2_section(self, data: YamlMap) -> str | None:
        """`correlation` or `filter` when the document is one; a detection rule may carry a custom
        key of the same name (a free-text note): that stays a custom key, with a warning."""
        for section, defining_key in (("correlation", "type"), ("filter", "rules")):
            if section not in data:
                continue
            value = data[section]
            if "detection" in data and not (isinstance(value, YamlMap) and defining_key in value):
                self.warn(data.key_position(section), Code.SECTION_NAME_KEY,
                          f"'{section}' is a Sigma 2 section name, but this detection rule uses it for {describe(value)}; read as a custom key")
                continue
            return section
        return None

    def dialect(self, data: YamlMap) -> str:
        """The rule format: Hayabusa's own (`ruletype: Hayabusa`, or a `details:` key), else Sigma."""
        ruletype = data.get("ruletype")
        if ruletype is None:
            return HAYABUSA if "details" in data and "detection" in data else SIGMA
        name = str(ruletype).strip().lower()
        if name not in (SIGMA, HAYABUSA):
            self.warn(data.value_position("ruletype"), Code.UNKNOWN_RULETYPE, f"ruletype '{str(ruletype)[:40]}' is not Sigma or Hayabusa; the rule is read as Sigma", Severity.INFO)
            return SIGMA
        return name

    def common(self, data: YamlMap, source: RuleSource) -> dict:
        rule_id = self.text(data, "id")
        if rule_id is not None:
            try:
                uuid.UUID(rule_id)
            except ValueError:
                self.warn(data.value_position("id"), Code.ID_NOT_UUID, f"the id '{rule_id[:60]}' is not a UUID")
        for key, allowed in (("status", STATUSES), ("level", LEVELS)):
            value = self.text(data, key)
            if value is not None and value not in allowed:
                self.warn(data.value_position(key), f"unknown-{key}", f"{key} '{value[:40]}' is not one of {', '.join(sorted(allowed))}")
        author = data.get("author")
        if isinstance(author, YamlList):  # some repositories list their authors: keep them all
            author = ", ".join(str(item) for item in author if item is not None)
        else:
            author = self.text(data, "author")
        tags, tag_positions = self.text_list_placed(data, "tags")
        return dict(
            source=source,
            title=self.text(data, "title", required=True),
            id=rule_id,
            name=self.text(data, "name"),
            status=self.text(data, "status"),
            level=self.text(data, "level"),
            description=self.text(data, "description"),
            author=author,
            date=self.text(data, "date"),
            modified=self.text(data, "modified"),
            license=self.text(data, "license"),
            references=tuple(dict.fromkeys(self.text_list(data, "references"))),
            tags=tags,
            falsepositives=self.text_list(data, "falsepositives"),
            related=self.related(data),
            fields=self.text_list(data, "fields"),
            regression_tests_path=self.text(data, "regression_tests_path"),
            simulation=self.simulation(data),
            dialect=self.dialect(data),
            id_position=data.value_position("id") if rule_id is not None else None,
            name_position=data.value_position("name") if "name" in data else None,
            tag_positions=tag_positions,
        )

    def simulation(self, data: YamlMap) -> tuple[Simulation, ...]:
        """SigmaHQ's `simulation:` list (atomic tests); an entry that is not a map is left out, with a warning."""
        value = data.get("simulation")
        if value is None:
            return ()
        entries = value if isinstance(value, YamlList) else [value]
        found = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, YamlMap) or any(isinstance(item, (dict, list)) for item in entry.values()):
                where = value.item_position(index) if isinstance(value, YamlList) else data.value_position("simulation")
                self.warn(where, Code.SIMULATION, f"simulation entry {index + 1} must be a map of text values (type, name, technique, atomic_guid); left out")
                continue
            found.append(Simulation(*(None if entry.get(key) is None else str(entry[key]) for key in ("type", "name", "technique", "atomic_guid"))))
        return tuple(found)

    def related(self, data: YamlMap) -> tuple[RelatedRule, ...]:
        value = data.get("related")
        if value is None:
            return ()
        if isinstance(value, YamlMap):  # one relation where a list is expected: a one-item list
            value = [value]
        elif not isinstance(value, YamlList):
            raise self.fail(data.value_position("related"), Code.WRONG_TYPE, f"'related' must be a list of maps with 'id' and 'type', not {describe(value)}")
        related = []
        for index, item in enumerate(value):
            if not isinstance(item, YamlMap):
                raise self.fail(value.item_position(index), Code.WRONG_TYPE, f"item {index + 1} of 'related' must be a map with 'id' and 'type'")
            relation = self.text(item, "type") or "related"
            if relation not in RELATION_TYPES:
                self.warn(item.value_position("type"), Code.UNKNOWN_RELATION, f"relation type '{relation[:40]}' is not one of {', '.join(sorted(RELATION_TYPES))}")
            related.append(RelatedRule(self.text(item, "id", required=True), relation))
        return tuple(related)

    def logsource(self, data: YamlMap) -> LogSource:
        logsource = self.mapping(data, "logsource")
        if logsource is None:
            if "logsource" not in data:
                self.warn((data.line, data.column), Code.MISSING_LOGSOURCE, "the rule has no 'logsource'")
            return LogSource()
        values = {key: self.logsource_values(logsource, key) for key in ("product", "category", "service")}
        definition = self.text(logsource, "definition")
        joined = {key: ", ".join(found) if found else None for key, found in values.items()}
        listed: tuple[LogSource, ...] = ()
        if any(len(found) > 1 for found in values.values()):
            listed = tuple(
                LogSource(product, category, service, definition)
                for product in values["product"] or (None,)
                for category in values["category"] or (None,)
                for service in values["service"] or (None,)
            )
        return LogSource(**joined, definition=definition, listed=listed)

    def logsource_values(self, logsource: YamlMap, key: str) -> tuple[str, ...]:
        """A log source field's value; written as a list, every value is kept, with a warning."""
        if not isinstance(logsource.get(key), YamlList):
            text = self.text(logsource, key)
            return (text,) if text is not None else ()
        found = tuple(dict.fromkeys(self.text_list(logsource, key)))
        self.warn(logsource.value_position(key), Code.LOGSOURCE_LIST,
                  f"logsource '{key}' is a list ({', '.join(found)[:80]}); Sigma expects one value: the rule is listed under each")
        return found

    # -- detection ---------------------------------------------------------------------------

    def detection(self, detection: YamlMap, where: str, extra_keys: Iterable[str] = ()) -> Detection:
        reserved = {"condition", "timeframe", *extra_keys}
        identifiers: dict[str, SearchIdentifier] = {}
        positions = detection.positions()
        for name, definition in detection.items():
            if name in reserved:
                continue
            position = positions.get(str(name), (detection.line, detection.column))
            if not isinstance(name, str):
                raise self.fail(position, Code.WRONG_TYPE, f"search identifier names must be text, not {describe(name)}")
            if not _IDENTIFIER_NAME.match(name):
                self.warn(position, Code.IDENTIFIER_NAME, f"the search identifier name '{name[:60]}' has characters a condition cannot refer to")
            identifiers[name] = self.search_identifier(name, definition, position)
        if not identifiers:
            raise self.fail((detection.line, detection.column), Code.NO_SEARCH, f"'{where}' defines no search identifier")
        conditions = self.conditions(detection, identifiers, where)
        used = {name for condition in conditions for name, _ in references(condition.expression)}
        for name, identifier in identifiers.items():
            if name not in used:
                self.warn((identifier.line, identifier.column), Code.UNUSED_IDENTIFIER, f"the search identifier '{name}' is defined but no condition uses it")
        timeframe = self.text(detection, "timeframe")
        return Detection(identifiers=identifiers, conditions=conditions, timeframe=timeframe)

    def conditions(self, detection: YamlMap, identifiers: dict[str, SearchIdentifier], where: str) -> tuple[Condition, ...]:
        if detection.get("condition") is None:
            raise self.fail((detection.line, detection.column), Code.MISSING_FIELD, f"'{where}' has no 'condition'")
        value = detection["condition"]
        if isinstance(value, YamlList):
            texts = [(item, value.item_position(index)) for index, item in enumerate(value)]
        else:
            texts = [(value, detection.value_position("condition"))]
        conditions = []
        for text, position in texts:
            if not isinstance(text, str):
                raise self.fail(position, Code.WRONG_TYPE, f"a condition must be text, not {describe(text)}")
            try:
                condition = parse_condition(text, list(identifiers))
            except ConditionError as error:
                where_error = _position_in_scalar(self.lines, position, text, error.offset)
                shown = " ".join(text.split())[:120]  # one line, as a problem is printed
                raise self.fail(where_error, Code.CONDITION, f"condition '{shown}': {error.message}") from None
            if condition.uppercase_operators:
                self.warn(position, Code.UPPERCASE_OPERATOR, f"condition operators should be lower case: {', '.join(dict.fromkeys(condition.uppercase_operators))}")
            if condition.aggregation is not None:
                self.warn(position, Code.LEGACY_AGGREGATION, f"legacy aggregation '| {condition.aggregation[:80]}' is kept as text; Sigma 2 expresses it as a correlation rule")
            conditions.append(condition)
        return tuple(conditions)

    def search_identifier(self, name: str, definition: object, position: tuple[int, int]) -> SearchIdentifier:
        if isinstance(definition, YamlMap):
            alternatives = (self.items(definition, name),)
        elif isinstance(definition, YamlList):
            maps = [item for item in definition if isinstance(item, YamlMap)]
            keywords = [item for item in definition if not isinstance(item, (YamlMap, YamlList))]
            for index, item in enumerate(definition):
                if isinstance(item, YamlList):
                    raise self.fail(definition.item_position(index), Code.WRONG_TYPE, f"'{name}' holds a list inside a list; use a list of maps or of values")
            alternatives = tuple(self.items(item, name) for item in maps)
            if keywords:
                alternatives += ((DetectionItem(None, (), tuple(keywords), definition.line, definition.column),),)
            if not alternatives:
                raise self.fail(position, Code.EMPTY_SEARCH, f"the search identifier '{name}' is an empty list")
        elif definition is None:
            raise self.fail(position, Code.EMPTY_SEARCH, f"the search identifier '{name}' is empty")
        else:
            alternatives = ((DetectionItem(None, (), (definition,), *position),),)
        return SearchIdentifier(name, alternatives, plain(definition), *position)

    def items(self, mapping: YamlMap, name: str) -> tuple[DetectionItem, ...]:
        items = []
        positions = mapping.positions()
        for key, value in mapping.items():
            position = positions.get(str(key), (mapping.line, mapping.column))
            if not isinstance(key, str):
                key = str(key).lower() if isinstance(key, bool) else str(key)
            field_name, *modifiers = key.split("|")
            chain = parse_modifiers(tuple(modifiers))
            for message in chain.problems:
                self.warn(position, Code.MODIFIER, f"'{name}', field '{key[:80]}': {message}", Severity.ERROR)
            if isinstance(value, YamlMap):
                raise self.fail(mapping.value_position(key), Code.WRONG_TYPE, f"'{name}', field '{key[:80]}': a map where a value or a list of values belongs")
            if isinstance(value, YamlList):
                for index, item in enumerate(value):
                    if isinstance(item, (YamlMap, YamlList)):
                        raise self.fail(value.item_position(index), Code.WRONG_TYPE, f"'{name}', field '{key[:80]}': item {index + 1} is {describe(item)}, not a value")
                values: tuple[Scalar, ...] = tuple(value)
                if not values:
                    self.warn(position, Code.EMPTY_VALUES, f"'{name}', field '{key[:80]}' has an empty list of values")
            else:
                values = (value,)
            items.append(DetectionItem(field_name or None, tuple(modifiers), values, *position))
        if not items:
            raise self.fail((mapping.line, mapping.column), Code.EMPTY_SEARCH, f"the search identifier '{name}' holds an empty map")
        return tuple(items)

    # -- Sigma 2 documents -------------------------------------------------------------------

    def references_list(self, data: YamlMap, key: str, required: bool = True) -> tuple[str, ...]:
        refs = self.text_list(data, key)
        if required and not refs:
            raise self.fail((data.line, data.column), Code.MISSING_FIELD, f"'{key}' must name at least one rule")
        return refs

    def correlation(self, data: YamlMap, common: dict) -> CorrelationRule:
        body = self.mapping(data, "correlation", True)
        kind = self.text(body, "type", required=True)
        if kind not in CORRELATION_TYPES:
            raise self.fail(body.value_position("type"), Code.CORRELATION_TYPE, f"correlation type '{kind[:40]}' is not one of {', '.join(sorted(CORRELATION_TYPES))}")
        timespan = self.text(body, "timespan", required=True)
        if not _TIMESPAN.match(timespan):
            self.warn(body.value_position("timespan"), Code.TIMESPAN, f"timespan '{timespan[:40]}' is not a number followed by s, m, h, d, w, M or y")
        condition = None
        if "condition" in body:
            condition = self.correlation_condition(body)
            if kind in VALUE_CORRELATIONS and condition.field is None:
                self.warn(body.value_position("condition"), Code.MISSING_FIELD, f"a {kind} correlation needs the 'field' whose values it compares")
        elif kind == "event_count" or kind in VALUE_CORRELATIONS:
            raise self.fail((body.line, body.column), Code.MISSING_FIELD, f"a {kind} correlation needs a 'condition'")
        aliases = {}
        for alias, mapping in (self.mapping(body, "aliases") or {}).items():
            if not isinstance(mapping, YamlMap):
                raise self.fail(body["aliases"].value_position(alias), Code.WRONG_TYPE, f"alias '{alias}' must map rule names to fields")
            aliases[str(alias)] = {str(rule): str(target) for rule, target in mapping.items()}
        generate = body.get("generate", False)
        return CorrelationRule(
            **common,
            type=kind,
            rules=self.references_list(body, "rules"),
            group_by=self.text_list(body, "group-by"),
            timespan=timespan,
            condition=condition,
            generate=generate is True,
            aliases=aliases,
        )

    def correlation_condition(self, body: YamlMap) -> CorrelationCondition:
        condition = self.mapping(body, "condition", True)
        operators = []
        for operator, value in condition.items():
            if operator in ("field", "percentile"):
                continue
            if operator not in CORRELATION_OPERATORS:
                raise self.fail(condition.key_position(operator), Code.CORRELATION_CONDITION, f"'{operator}' is not a correlation condition operator ({', '.join(sorted(CORRELATION_OPERATORS))})")
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(condition.value_position(operator), Code.WRONG_TYPE, f"the threshold of '{operator}' must be a whole number, not {describe(value)}")
            operators.append((operator, value))
        if not operators:
            raise self.fail((condition.line, condition.column), Code.CORRELATION_CONDITION, "the correlation condition has no operator (gte, gt, lte, lt, eq, neq)")
        percentile = condition.get("percentile")
        if percentile is not None and (isinstance(percentile, bool) or not isinstance(percentile, int) or not 0 <= percentile <= 100):
            raise self.fail(condition.value_position("percentile"), Code.WRONG_TYPE, f"'percentile' must be a whole number from 0 to 100, not {describe(percentile)}")
        return CorrelationCondition(tuple(operators), self.text(condition, "field"), percentile)

    def filter(self, data: YamlMap, common: dict) -> FilterRule:
        body = self.mapping(data, "filter", True)
        if "rules" not in body:
            raise self.fail((body.line, body.column), Code.MISSING_FIELD, "a filter needs 'rules': the rules it applies to, or 'any'")
        rules = self.references_list(body, "rules", required=False)
        any_rule = not rules or (len(rules) == 1 and rules[0].strip().lower() == "any")  # Sigma 2.1: `rules: any`
        return FilterRule(
            **common,
            rules=() if any_rule else rules,
            logsource=self.logsource(data),
            detection=self.detection(body, "filter", extra_keys=("rules",)),
            any_rule=any_rule,
        )
