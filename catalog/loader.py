"""Loading: rule folders -> files -> YAML documents -> typed Sigma documents, or listed problems.

Nothing here raises for bad input: every file either yields documents or problems (often both:
warnings ride along with a document that still loads).
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from catalog.conditions import ConditionError, Condition, parse_condition, references
from catalog.model import (
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
    display_path,
)
from catalog.modifiers import parse_modifiers
from catalog.problems import Code, Problem, RuleError, Severity
from catalog.yamlsafe import YamlError, YamlList, YamlMap, load_documents

#: Larger files are refused before parsing: no real rule comes near this.
MAX_FILE_BYTES = 20 * 1024 * 1024
RULE_SUFFIXES = (".yml", ".yaml")

STATUSES = {"stable", "test", "experimental", "deprecated", "unsupported"}
LEVELS = {"informational", "low", "medium", "high", "critical"}
CORRELATION_TYPES = {"event_count", "value_count", "temporal", "temporal_ordered"}
CORRELATION_OPERATORS = {"gt", "gte", "lt", "lte", "eq", "neq"}
RELATION_TYPES = {"derived", "obsolete", "merged", "renamed", "similar"}
_TIMESPAN = re.compile(r"^\d+[smhdwMy]$")
_IDENTIFIER_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True, slots=True)
class RuleFile:
    root: str  # the rule folder as given
    relative: str  # posix path inside the folder
    path: Path

    @property
    def display(self) -> str:
        return display_path(self.root, self.relative)


@dataclass(slots=True)
class LoadResult:
    files: list[RuleFile] = field(default_factory=list)
    documents: list[SigmaDocument] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def discover(roots: Sequence[str | os.PathLike]) -> tuple[list[RuleFile], list[Problem]]:
    """Every rule file under the folders, sorted by folder then path, symlinks kept inside."""
    files: list[RuleFile] = []
    problems: list[Problem] = []
    for root in roots:
        root_text = os.fspath(root)
        base = Path(root_text)
        if base.is_file():
            files.append(RuleFile(str(base.parent), base.name, base))
            continue
        if not base.is_dir():
            problems.append(_problem(root_text, 0, 0, Code.MISSING_FOLDER, "the rule folder does not exist"))
            continue
        real_base = base.resolve()
        found: list[RuleFile] = []
        # Plain strings, not Path objects, while walking: this runs on every rebuild of mkdocs serve.
        for directory, subdirectories, names in os.walk(root_text):
            subdirectories.sort()
            inside = os.path.relpath(directory, root_text).replace(os.sep, "/")
            prefix = "" if inside == "." else inside + "/"
            for name in subdirectories:  # os.walk does not enter linked folders: say so for outside ones
                if _links_outside(os.path.join(directory, name), real_base):
                    problems.append(_problem(display_path(root_text, prefix + name), 0, 0, Code.SYMLINK_OUTSIDE, "the folder is a symbolic link to a place outside the rule folder; its files are not read"))
            for name in names:
                if not name.endswith(RULE_SUFFIXES):
                    continue
                full = os.path.join(directory, name)
                if _links_outside(full, real_base):
                    problems.append(_problem(display_path(root_text, prefix + name), 0, 0, Code.SYMLINK_OUTSIDE, "the file is a symbolic link to a place outside the rule folder; it is not read"))
                    continue
                found.append(RuleFile(root_text, prefix + name, Path(full)))
        files.extend(sorted(found, key=lambda rule_file: rule_file.relative))
    return files, problems


def _links_outside(path: str, real_base: Path) -> bool:
    return os.path.islink(path) and not Path(path).resolve().is_relative_to(real_base)


def load(roots: Sequence[str | os.PathLike]) -> LoadResult:
    result = LoadResult()
    result.files, result.problems = discover(roots)
    for rule_file in result.files:
        documents, problems = load_file(rule_file)
        result.documents.extend(documents)
        result.problems.extend(problems)
    return result


def load_file(rule_file: RuleFile) -> tuple[list[SigmaDocument], list[Problem]]:
    display = rule_file.display
    try:
        size = rule_file.path.stat().st_size
        if size > MAX_FILE_BYTES:
            return [], [_problem(display, 0, 0, Code.FILE_TOO_LARGE, f"the file has {size:,} bytes, more than the {MAX_FILE_BYTES:,} a rule may have")]
        data = rule_file.path.read_bytes()
    except OSError as error:
        return [], [_problem(display, 0, 0, Code.UNREADABLE, f"the file cannot be read: {error.strerror}")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        return [], [_problem(display, line, column, Code.NOT_UTF8, f"byte 0x{data[error.start]:02x} is not valid UTF-8; rules must be UTF-8 text")]
    return load_text(text, rule_file.root, rule_file.relative)


def load_text(text: str, root: str, relative: str) -> tuple[list[SigmaDocument], list[Problem]]:
    """The documents of one file's text; `root` and `relative` say where it came from."""
    display = display_path(root, relative)
    problems: list[Problem] = []
    if not text.strip():
        return [], [_problem(display, 0, 0, Code.EMPTY_FILE, "the file is empty: there is no rule in it")]
    try:
        yaml_documents = list(load_documents(text))
    except YamlError as error:
        return [], [_problem(display, error.line, error.column, "yaml", error.message)]

    lines = text.splitlines(keepends=True)
    present = [document for document in yaml_documents if document.data is not None]
    if not present:
        return [], [_problem(display, 0, 0, Code.EMPTY_FILE, "the file holds only empty YAML documents")]
    documents: list[SigmaDocument] = []
    global_part: YamlMap | None = None
    global_text = ""
    previous: YamlMap | None = None
    slice_start = 0
    for index, yaml_document in enumerate(yaml_documents):
        slice_end = len(lines) if index == len(yaml_documents) - 1 else yaml_document.end_line - 1
        own_text = text if len(yaml_documents) == 1 else "".join(lines[slice_start:slice_end])
        slice_start = slice_end
        data = yaml_document.data
        if data is None:
            continue
        if not isinstance(data, YamlMap):
            problems.append(_problem(display, yaml_document.line, 1, Code.NOT_A_MAP, f"a Sigma document must be a map of keys, not {_describe(data)}"))
            continue
        action = data.get("action")
        if action == "global":
            global_part, global_text = data, own_text
            continue
        if action == "reset":
            global_part, global_text = None, ""
            continue
        if action == "repeat" and previous is not None:
            data = _merged(previous, data)
        elif action is not None and action != "repeat":
            line, column = data.value_position("action")
            problems.append(_problem(display, line, column, Code.UNKNOWN_ACTION, f"unknown collection action '{action}' (Sigma knows global, reset and repeat)"))
            continue
        if global_part is not None:
            data = _merged(global_part, data)
        previous = data
        source = RuleSource(
            root=root,
            path=relative,
            document=index,
            line=yaml_document.line,
            raw_text=global_text + own_text if global_part is not None else own_text,
            documents_in_file=len(present),
        )
        reader = _DocumentReader(display, problems, lines)
        try:
            documents.append(reader.document(data, source))
        except RuleError as error:
            problems.append(error.problem)
    return documents, problems


def _merged(base: YamlMap, override: YamlMap) -> YamlMap:
    """`override` laid over `base`, maps merged key by key, positions kept."""
    result = YamlMap(base)
    result.node, result.moved = override.node, {}
    for key in base:
        result.placed(key, base)
    for key, value in override.items():
        current = result.get(key)
        result[key] = _merged(current, value) if isinstance(current, YamlMap) and isinstance(value, YamlMap) else value
        result.placed(key, override)
    result.pop("action", None)
    return result


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


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"the {type(value).__name__} {value!r}"[:80]


def _problem(path: str, line: int, column: int, code: str, message: str, severity: Severity = Severity.ERROR) -> Problem:
    return Problem(path, line, column, severity, code, message)


class _DocumentReader:
    """Reads one YAML map into a typed document; type errors raise RuleError, doubts become warnings."""

    def __init__(self, display: str, problems: list[Problem], lines: Sequence[str] = ()):
        self.display = display
        self.problems = problems
        self.lines = lines  # the file's text, to place errors inside multi-line or quoted values

    # -- reporting ---------------------------------------------------------------------------

    def fail(self, position: tuple[int, int], code: str, message: str) -> RuleError:
        return RuleError(_problem(self.display, position[0], position[1], code, message))

    def warn(self, position: tuple[int, int], code: str, message: str, severity: Severity = Severity.WARNING) -> None:
        self.problems.append(_problem(self.display, position[0], position[1], code, message, severity))

    # -- typed field readers -----------------------------------------------------------------

    def text(self, data: YamlMap, key: str, required: bool = False) -> str | None:
        if key not in data or data[key] is None:
            if required:
                raise self.fail((data.line, data.column), Code.MISSING_FIELD, f"the required field '{key}' is missing")
            return None
        value = data[key]
        if isinstance(value, (dict, list)):
            raise self.fail(data.value_position(key), Code.WRONG_TYPE, f"'{key}' must be text, not {_describe(value)}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if required and not text.strip():
            raise self.fail(data.value_position(key), Code.MISSING_FIELD, f"the required field '{key}' is empty")
        return text

    def text_list(self, data: YamlMap, key: str) -> tuple[str, ...]:
        value = data.get(key)
        if value is None:
            return ()
        if isinstance(value, (str, int, float)):
            self.warn(data.value_position(key), Code.WRONG_TYPE, f"'{key}' should be a list; read the single value as a one-item list")
            return (str(value),)
        if not isinstance(value, YamlList):
            raise self.fail(data.value_position(key), Code.WRONG_TYPE, f"'{key}' must be a list of text values, not {_describe(value)}")
        items = []
        for index, item in enumerate(value):
            if isinstance(item, (dict, list)):
                raise self.fail(value.item_position(index), Code.WRONG_TYPE, f"the items of '{key}' must be text, item {index + 1} is {_describe(item)}")
            if item is not None:
                items.append(str(item))
        return tuple(items)

    def mapping(self, data: YamlMap, key: str, required: bool = False) -> YamlMap | None:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail((data.line, data.column), Code.MISSING_FIELD, f"the required field '{key}' is missing")
            return None
        if not isinstance(value, YamlMap):
            raise self.fail(data.value_position(key), Code.WRONG_TYPE, f"'{key}' must be a map, not {_describe(value)}")
        return value

    # -- documents ---------------------------------------------------------------------------

    def document(self, data: YamlMap, source: RuleSource) -> SigmaDocument:
        common = self.common(data, source)
        if "correlation" in data:
            return self.correlation(data, common)
        if "filter" in data:
            return self.filter(data, common)
        if "detection" not in data:
            raise self.fail((data.line, data.column), Code.NOT_A_RULE, "not a Sigma rule: the document has no 'detection', 'correlation' or 'filter'")
        return Rule(**common, logsource=self.logsource(data), detection=self.detection(self.mapping(data, "detection", True), "detection"))

    def common(self, data: YamlMap, source: RuleSource) -> dict:
        rule_id = self.text(data, "id")
        if rule_id is not None:
            try:
                uuid.UUID(rule_id)
            except ValueError:
                self.warn(data.value_position("id"), Code.ID_NOT_UUID, f"the id '{rule_id[:60]}' is not a UUID")
        for key, allowed, code in (("status", STATUSES, Code.UNKNOWN_STATUS), ("level", LEVELS, Code.UNKNOWN_LEVEL)):
            value = self.text(data, key)
            if value is not None and value not in allowed:
                self.warn(data.value_position(key), code, f"{key} '{value[:40]}' is not one of {', '.join(sorted(allowed))}")
        author = data.get("author")
        if isinstance(author, YamlList):  # some repositories list their authors: keep them all
            author = ", ".join(str(item) for item in author if item is not None)
        else:
            author = self.text(data, "author")
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
            tags=self.text_list(data, "tags"),
            falsepositives=self.text_list(data, "falsepositives"),
            related=self.related(data),
            fields=self.text_list(data, "fields"),
        )

    def related(self, data: YamlMap) -> tuple[RelatedRule, ...]:
        value = data.get("related")
        if value is None:
            return ()
        if not isinstance(value, YamlList):
            raise self.fail(data.value_position("related"), Code.WRONG_TYPE, f"'related' must be a list of maps with 'id' and 'type', not {_describe(value)}")
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
        return LogSource(
            product=self.text(logsource, "product"),
            category=self.text(logsource, "category"),
            service=self.text(logsource, "service"),
            definition=self.text(logsource, "definition"),
        )

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
                raise self.fail(position, Code.WRONG_TYPE, f"search identifier names must be text, not {_describe(name)}")
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
                raise self.fail(position, Code.WRONG_TYPE, f"a condition must be text, not {_describe(text)}")
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
        return SearchIdentifier(name, alternatives, definition, *position)

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
                        raise self.fail(value.item_position(index), Code.WRONG_TYPE, f"'{name}', field '{key[:80]}': item {index + 1} is {_describe(item)}, not a value")
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
        elif kind in {"event_count", "value_count"}:
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
            if operator == "field":
                continue
            if operator not in CORRELATION_OPERATORS:
                raise self.fail(condition.key_position(operator), Code.CORRELATION_CONDITION, f"'{operator}' is not a correlation condition operator ({', '.join(sorted(CORRELATION_OPERATORS))})")
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(condition.value_position(operator), Code.WRONG_TYPE, f"the threshold of '{operator}' must be a whole number, not {_describe(value)}")
            operators.append((operator, value))
        if not operators:
            raise self.fail((condition.line, condition.column), Code.CORRELATION_CONDITION, "the correlation condition has no operator (gte, gt, lte, lt, eq, neq)")
        return CorrelationCondition(tuple(operators), self.text(condition, "field"))

    def filter(self, data: YamlMap, common: dict) -> FilterRule:
        body = self.mapping(data, "filter", True)
        return FilterRule(
            **common,
            rules=self.references_list(body, "rules"),
            logsource=self.logsource(data),
            detection=self.detection(body, "filter", extra_keys=("rules",)),
        )
