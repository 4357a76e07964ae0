"""Safe YAML reading with positions: duplicate keys are recorded, aliases cannot explode.

Parsing and composing run in libyaml (PyYAML's C loader) where available, the pure-Python loader
otherwise. Construction is ours: it keeps the line and column of every map, list and key, records
duplicate keys (PyYAML silently keeps the last value; the loader reports them), keeps the written
form of numbers (`0x17`), refuses non-standard tags and aliases that contain themselves, and caps
what a file may expand to through aliases (values and characters, over all its documents), so an
alias bomb fails fast instead of eating memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import yaml
from yaml.constructor import SafeConstructor

from catalog.problems import Code

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - libyaml missing: same results, slower
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

#: A file may expand to at most this many values (a 50,000-value rule stays far below).
MAX_VALUES = 1_000_000
#: ... and to at most this many characters of keys and values, each counted as often as aliases
#: repeat it. The largest real rules (50,000 keyword values) hold about 5 MB; files over 20 MB are
#: refused before parsing; 32 Mi characters leave room for both and bound what one file costs.
MAX_EXPANDED_CHARACTERS = 32 * 1024 * 1024

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_PLAIN_SCALARS = {
    tag: SafeConstructor.yaml_constructors[tag]
    for tag in ("tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
}


class _Loader(_BaseLoader):
    """The safe loader with a memo for the implicit type of plain scalars.

    Rules repeat the same keys and values thousands of times across a catalog, and resolving a
    plain scalar's type runs regular expressions in Python for every single one.
    """

    _memo: dict[str, str] = {}
    _MEMO_LIMIT = 200_000  # entries; short values only, so the memo stays a few MB at most

    def resolve(self, kind, value, implicit):  # noqa: ANN001 - PyYAML's signature
        # What PyYAML's resolver answers, without it for all but plain scalars (a call in Python
        # for each of a catalog's million values): the safe loader has no path resolvers.
        if kind is not yaml.ScalarNode:
            return _MAP if kind is yaml.MappingNode else _SEQ
        if not implicit[0]:  # quoted, or a block scalar
            return _STR
        if len(value) <= 64:
            tag = self._memo.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(self._memo) < self._MEMO_LIMIT:
                    self._memo[value] = tag
            return tag
        return super().resolve(kind, value, implicit)


assert not _Loader.yaml_path_resolvers, "PyYAML's safe loader resolves no paths (_Loader.resolve relies on it)"


class YamlError(ValueError):
    """A problem at a place of the text (1-based line and column)."""

    def __init__(self, message: str, line: int, column: int, code: str = "yaml"):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.code = code


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Placed:
    """Where a composed map or list starts (1-based), read from the node it was built from."""

    __slots__ = ()
    node: yaml.Node

    @property
    def line(self) -> int:
        return self.node.start_mark.line + 1

    @property
    def column(self) -> int:
        return self.node.start_mark.column + 1


class YamlMap(_Placed, dict):
    """A mapping that can tell where it and each of its keys and values were written.

    Positions are looked up in the composed nodes only when asked for, through an index of the
    keys made at the first question (merges ask for every key: a scan per key would be quadratic);
    keys brought in by merging carry their positions with them in `moved`.
    """

    __slots__ = ("node", "moved", "_index")

    def __init__(self, items: object = (), node: yaml.Node | None = None):
        super().__init__(items)  # type: ignore[arg-type]
        self.node = node
        self.moved: dict[object, tuple[tuple[int, int], tuple[int, int]]] | None = None
        self._index: dict[str, tuple[yaml.Node, yaml.Node]] | None = None

    def _nodes(self, key: object) -> tuple[yaml.Node, yaml.Node] | None:
        if self._index is None:
            self._index = {}
            for pair in self.node.value:
                if isinstance(pair[0], yaml.ScalarNode):
                    self._index.setdefault(pair[0].value, pair)
        return self._index.get(str(key))

    def key_position(self, key: object) -> tuple[int, int]:
        if self.moved and key in self.moved:
            return self.moved[key][0]
        nodes = self._nodes(key)
        return _position(nodes[0]) if nodes else (self.line, self.column)

    def value_position(self, key: object) -> tuple[int, int]:
        if self.moved and key in self.moved:
            return self.moved[key][1]
        nodes = self._nodes(key)
        return _position(nodes[1]) if nodes else (self.line, self.column)

    def positions(self) -> dict[object, tuple[int, int]]:
        """Every key's position, in one pass (for readers that need them all)."""
        found = {key_node.value: _position(key_node) for key_node, _ in self.node.value if isinstance(key_node, yaml.ScalarNode)}
        if self.moved:
            found.update((key, marks[0]) for key, marks in self.moved.items())
        return found

    def placed(self, key: object, source: "YamlMap") -> None:
        """Record that `key` came from `source` (a merge), so its position stays right."""
        if self.moved is None:
            self.moved = {}
        self.moved[key] = (source.key_position(key), source.value_position(key))


class YamlList(_Placed, list):
    """A sequence that can tell where it and each of its items were written."""

    __slots__ = ("node",)

    def item_position(self, index: int) -> tuple[int, int]:
        items = self.node.value
        return _position(items[index]) if index < len(items) else (self.line, self.column)


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A key written twice in one map: YAML keeps the last value, the first is lost."""

    key: str
    first_line: int
    line: int  # of the repeat, whose value is kept
    column: int


@dataclass(frozen=True, slots=True)
class YamlDocument:
    data: object
    line: int  # where the document's content starts
    end_line: int
    characters: int  # of keys and values, aliases expanded (what a copy of it costs)
    duplicates: tuple[DuplicateKey, ...] = ()


def load_documents(text: str) -> Iterator[YamlDocument]:
    """Every document of `text`, in order; raises YamlError for the first problem found."""
    loader = _Loader(text)
    builder = _Builder(text)  # one for the whole file: the limits are per file
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            characters_before, duplicates_before = builder.characters, len(builder.duplicates)
            data = builder.build(node)
            yield YamlDocument(
                data, node.start_mark.line + 1, node.end_mark.line + 1,
                builder.characters - characters_before, tuple(builder.duplicates[duplicates_before:]),
            )
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = " ".join(part for part in (error.context, error.problem) if part)
        raise YamlError(f"YAML syntax error: {message}", mark.line + 1 if mark else 0, mark.column + 1 if mark else 0) from None
    except yaml.reader.ReaderError as error:  # a character YAML does not allow, e.g. NUL
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        raise YamlError(f"character #x{error.character:04x} is not allowed in YAML text: {error.reason}", line, column) from None
    except yaml.YAMLError as error:
        raise YamlError(f"YAML error: {' '.join(str(error).split())}", 0, 0) from None
    finally:
        loader.dispose()


class WrittenInt(int):
    """An integer that remembers how the rule wrote it (`0x17`, `007`, `+5`): shown as written."""

    def __str__(self) -> str:
        return self.written


class WrittenFloat(float):
    """A float that remembers how the rule wrote it (`1e3`, `.5`): shown as written."""

    def __str__(self) -> str:
        return self.written


def plain(value: object) -> object:
    """`value` with its maps and lists as plain dicts and lists: what a document keeps after reading
    (a YamlMap or YamlList holds on to its composed nodes, ~10 objects per value written)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def written_number(value: object, source: str) -> object:
    """`value` as constructed, or a number that keeps its source text when `str` would change it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or str(value) == source:
        return value
    number = WrittenInt(value) if isinstance(value, int) else WrittenFloat(value)
    number.written = source
    return number


class _Builder:
    """Turns composed node trees into YamlMap / YamlList / scalars, within the limits of one file."""

    _scalars = SafeConstructor()

    def __init__(self, text: str) -> None:
        self.text = text
        self.values = 0
        self.characters = 0
        self.open: set[yaml.Node] = set()  # maps and lists being built: met again, an alias holds itself
        self.duplicates: list[DuplicateKey] = []

    def build(self, node: yaml.Node) -> object:
        self.values += 1
        if self.values > MAX_VALUES:
            raise YamlError(f"the file expands to more than {MAX_VALUES:,} values (an alias bomb?)", *_position(node), Code.EXPANDS_TOO_LARGE)
        tag = node.tag
        if tag == _MAP or tag == _SEQ:
            if node in self.open:
                raise YamlError("an alias refers to the map or list that contains it (a recursive alias)", *self._recursive_alias(node), Code.RECURSIVE_ALIAS)
            self.open.add(node)
            try:
                return self._mapping(node) if tag == _MAP else self._sequence(node)
            finally:
                self.open.discard(node)
        if isinstance(node.value, str):
            self.characters += len(node.value)
            if self.characters > MAX_EXPANDED_CHARACTERS:
                raise YamlError(
                    f"the file expands to more than {MAX_EXPANDED_CHARACTERS:,} characters of keys and values (an alias bomb?)",
                    *_position(node),
                    Code.EXPANDS_TOO_LARGE,
                )
        if tag == _STR or tag == _TIMESTAMP:  # dates stay as written: Sigma wants text, not datetime
            return node.value
        construct = _PLAIN_SCALARS.get(tag)
        if construct is None or not isinstance(node, yaml.ScalarNode):
            raise YamlError(f"the YAML tag '{tag}' is not allowed in a rule (only plain YAML values are)", *_position(node))
        return written_number(construct(self._scalars, node), node.value)


    def _sequence(self, node: yaml.SequenceNode) -> YamlList:
        items = YamlList([self.build(child) for child in node.value])
        items.node = node
        return items

    def _recursive_alias(self, node: yaml.Node) -> tuple[int, int]:
        """Where the first alias naming a map or list it is inside is written (the anchor's place if not found).

        Composed nodes do not remember aliases, so the text's events are read again (only for this error)."""
        open_anchors: list[str | None] = []
        for event in yaml.parse(self.text, Loader=_BaseLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                open_anchors.append(event.anchor)
            elif isinstance(event, yaml.CollectionEndEvent):
                open_anchors.pop()
            elif isinstance(event, yaml.AliasEvent) and event.anchor in open_anchors:
                return event.start_mark.line + 1, event.start_mark.column + 1
        return _position(node)

    def _mapping(self, node: yaml.MappingNode) -> YamlMap:
        result = YamlMap(node=node)
        build = self.build
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self._merge(result, value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("a map or list is used as a key", *_position(key_node))
            key = build(key_node)
            if key in result and not (result.moved and key in result.moved):
                # reported by the loader (an error); the rule still loads with the last value, as YAML reads it
                self.duplicates.append(DuplicateKey(str(key), result.key_position(key)[0], *_position(key_node)))
            if result.moved:
                result.moved.pop(key, None)  # written here: overrides a merged key
            result[key] = build(value_node)
        return result

    def _merge(self, result: YamlMap, value_node: yaml.Node) -> None:
        """`<<: *anchor` merges a map (or a list of maps) without overriding keys written here."""
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            merged = self.build(source)
            if not isinstance(merged, YamlMap):
                raise YamlError("'<<' must merge a map", *_position(source))
            for key, value in merged.items():
                if key not in result:
                    result[key] = value
                    result.placed(key, merged)
