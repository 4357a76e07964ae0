"""Typed fields of a YAML map (text, lists of text, maps), each problem placed at the value.

`catalog.reader` builds Sigma documents on these; the loader uses `describe` and `problem` too.
"""

from __future__ import annotations

from typing import Sequence

from catalog.problems import Code, Problem, RuleError, Severity
from catalog.yamlsafe import YamlList, YamlMap


def describe(value: object) -> str:
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"the {type(value).__name__} {value!r}"[:80]


def problem(path: str, line: int, column: int, code: str, message: str, severity: Severity = Severity.ERROR) -> Problem:
    return Problem(path, line, column, severity, code, message)


class FieldReader:
    """Reads the fields of one document's YAML maps as the types Sigma wants; what does not fit raises
    RuleError (the document has no page) or becomes a warning, at the value's place."""

    def __init__(self, display: str, problems: list[Problem], lines: Sequence[str] = ()):
        self.display = display
        self.problems = problems
        self.lines = lines  # the file's text, to place errors inside multi-line or quoted values

    # -- reporting ---------------------------------------------------------------------------

    def fail(self, position: tuple[int, int], code: str, message: str) -> RuleError:
        return RuleError(problem(self.display, position[0], position[1], code, message))

    def warn(self, position: tuple[int, int], code: str, message: str, severity: Severity = Severity.WARNING) -> None:
        self.problems.append(problem(self.display, position[0], position[1], code, message, severity))

    # -- typed field readers -----------------------------------------------------------------

    def text(self, data: YamlMap, key: str, required: bool = False) -> str | None:
        if key not in data or data[key] is None:
            if required:
                raise self.fail((data.line, data.column), Code.MISSING_FIELD, f"the required field '{key}' is missing")
            return None
        value = data[key]
        if isinstance(value, (dict, list)):
            raise self.fail(data.value_position(key), Code.WRONG_TYPE, f"'{key}' must be text, not {describe(value)}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if required and not text.strip():
            raise self.fail(data.value_position(key), Code.MISSING_FIELD, f"the required field '{key}' is empty")
        return text

    def text_list(self, data: YamlMap, key: str) -> tuple[str, ...]:
        return self.text_list_placed(data, key)[0]

    def text_list_placed(self, data: YamlMap, key: str) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
        """A list of text values and where each is written; a single text is a one-item list (Sigma 2.1)."""
        value = data.get(key)
        if value is None:
            return (), ()
        if isinstance(value, (str, int, float)):
            return (str(value),), (data.value_position(key),)
        if not isinstance(value, YamlList):
            raise self.fail(data.value_position(key), Code.WRONG_TYPE, f"'{key}' must be a list of text values, not {describe(value)}")
        items, positions = [], []
        for index, item in enumerate(value):
            if isinstance(item, (dict, list)):
                raise self.fail(value.item_position(index), Code.WRONG_TYPE, f"the items of '{key}' must be text, item {index + 1} is {describe(item)}")
            if item is not None:
                items.append(str(item))
                positions.append(value.item_position(index))
        return tuple(items), tuple(positions)

    def mapping(self, data: YamlMap, key: str, required: bool = False) -> YamlMap | None:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail((data.line, data.column), Code.MISSING_FIELD, f"the required field '{key}' is missing")
            return None
        if not isinstance(value, YamlMap):
            raise self.fail(data.value_position(key), Code.WRONG_TYPE, f"'{key}' must be a map, not {describe(value)}")
        return value
