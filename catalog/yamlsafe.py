"""Safe YAML reading with positions: duplicate keys are errors, aliases cannot explode.

Parsing and composing run in libyaml (PyYAML's C loader) where available, the pure-Python loader
otherwise. Construction is ours: it keeps the line and column of every map, list and key, refuses
duplicate keys (PyYAML would silently keep the last), refuses non-standard tags, and caps the number
of values a document may expand to, so an alias bomb fails fast instead of eating memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import yaml
from yaml.constructor import SafeConstructor

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml missing: same results, slower
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

#: A document may expand to at most this many values (a 50,000-value rule stays far below).
MAX_VALUES = 1_000_000

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_PLAIN_SCALARS = {
    tag: SafeConstructor.yaml_constructors[tag]
    for tag in ("tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
}


class YamlError(ValueError):
    """A problem at a place of the text (1-based line and column)."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class YamlMap(dict):
    """A mapping that remembers where it and each of its keys were written."""

    __slots__ = ("line", "column", "key_marks", "value_marks")

    def key_position(self, key: object) -> tuple[int, int]:
        return self.key_marks.get(key, (self.line, self.column))

    def value_position(self, key: object) -> tuple[int, int]:
        return self.value_marks.get(key, self.key_position(key))


class YamlList(list):
    """A sequence that remembers where it and each of its items were written."""

    __slots__ = ("line", "column", "item_marks")

    def item_position(self, index: int) -> tuple[int, int]:
        return self.item_marks[index] if index < len(self.item_marks) else (self.line, self.column)


@dataclass(frozen=True, slots=True)
class YamlDocument:
    data: object
    line: int  # where the document's content starts
    end_line: int


def load_documents(text: str) -> Iterator[YamlDocument]:
    """Every document of `text`, in order; raises YamlError for the first problem found."""
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            builder = _Builder()
            yield YamlDocument(builder.build(node), node.start_mark.line + 1, node.end_mark.line + 1)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = " ".join(part for part in (error.context, error.problem) if part)
        raise YamlError(f"YAML syntax error: {message}", mark.line + 1 if mark else 0, mark.column + 1 if mark else 0) from None
    except yaml.YAMLError as error:
        raise YamlError(f"YAML error: {error}", 0, 0) from None
    finally:
        loader.dispose()


class _Builder:
    """Turns a composed node tree into YamlMap / YamlList / scalars."""

    _scalars = SafeConstructor()

    def __init__(self) -> None:
        self.budget = MAX_VALUES

    def build(self, node: yaml.Node) -> object:
        self.budget -= 1
        if self.budget < 0:
            raise YamlError(
                f"the document expands to more than {MAX_VALUES:,} values (an alias bomb?)",
                node.start_mark.line + 1,
                node.start_mark.column + 1,
            )
        tag = node.tag
        if isinstance(node, yaml.ScalarNode):
            if tag == _STR:
                return node.value
            if tag == _TIMESTAMP:
                return node.value  # dates stay as written: Sigma wants text, not datetime
            construct = _PLAIN_SCALARS.get(tag)
            if construct is not None:
                return construct(self._scalars, node)
            raise self._unsupported(node)
        if isinstance(node, yaml.SequenceNode):
            if tag != _SEQ:
                raise self._unsupported(node)
            items = YamlList(self.build(child) for child in node.value)
            items.line, items.column = node.start_mark.line + 1, node.start_mark.column + 1
            items.item_marks = [(child.start_mark.line + 1, child.start_mark.column + 1) for child in node.value]
            return items
        if tag != _MAP:
            raise self._unsupported(node)
        return self._mapping(node)

    def _mapping(self, node: yaml.MappingNode) -> YamlMap:
        result = YamlMap()
        result.line, result.column = node.start_mark.line + 1, node.start_mark.column + 1
        result.key_marks = {}
        result.value_marks = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self._merge(result, value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError(
                    "a map or list is used as a key",
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
            key = self.build(key_node)
            position = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result.key_marks:
                first_line = result.key_marks[key][0]
                raise YamlError(
                    f"duplicate key '{key}': first written on line {first_line}, again on line {position[0]}"
                    " (YAML would silently keep only the last value)",
                    *position,
                )
            result.key_marks[key] = position
            result.value_marks[key] = (value_node.start_mark.line + 1, value_node.start_mark.column + 1)
            result[key] = self.build(value_node)
        return result

    def _merge(self, result: YamlMap, value_node: yaml.Node) -> None:
        """`<<: *anchor` merges a map (or a list of maps) without overriding keys written here."""
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            merged = self.build(source)
            if not isinstance(merged, YamlMap):
                raise YamlError("'<<' must merge a map", source.start_mark.line + 1, source.start_mark.column + 1)
            for key, value in merged.items():
                if key not in result:
                    result[key] = value
                    result.key_marks[key] = merged.key_position(key)
                    result.value_marks[key] = merged.value_position(key)

    @staticmethod
    def _unsupported(node: yaml.Node) -> YamlError:
        return YamlError(
            f"the YAML tag '{node.tag}' is not allowed in a rule (only plain YAML values are)",
            node.start_mark.line + 1,
            node.start_mark.column + 1,
        )

