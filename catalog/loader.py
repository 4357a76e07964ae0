"""Loading: rule folders -> files (catalog.files) -> YAML documents -> typed Sigma documents, or listed problems.

Nothing here raises for bad input: every file either yields documents or problems (often both:
warnings ride along with a document that still loads).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from catalog.files import RuleFile, discover
from catalog.model import RuleSource, SigmaDocument, display_path
from catalog.problems import Code, Problem, RuleError, Severity, internal_error
from catalog.reader import DocumentReader
from catalog.typedfields import describe
from catalog.typedfields import problem as _problem
from catalog.timelimit import time_limit
from catalog.yamlsafe import MAX_EXPANDED_CHARACTERS, YamlDocument, YamlError, YamlMap, load_documents

#: Larger files are refused before parsing: no real rule comes near this.
MAX_FILE_BYTES = 20 * 1024 * 1024

#: Keys that make a YAML document a rule of some kind; a document with none of them is something else.
RULE_KEYS = ("title", "detection", "correlation", "filter")


@dataclass(slots=True)
class LoadResult:
    files: list[RuleFile] = field(default_factory=list)
    documents: list[SigmaDocument] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def load(roots: Sequence[str | os.PathLike]) -> LoadResult:
    result = LoadResult()
    result.files, result.problems = discover(roots)
    for rule_file in result.files:
        documents, problems = load_file(rule_file)
        result.documents.extend(documents)
        result.problems.extend(problems)
    return result


def load_file(rule_file: RuleFile) -> tuple[list[SigmaDocument], list[Problem]]:
    """The documents and problems of one file; whatever goes wrong reading it costs this file only."""
    try:
        with time_limit():
            return _read_file(rule_file)
    except Exception as error:  # noqa: BLE001 - a bug or a limit must not take the other files down
        return [], [internal_error(rule_file.display, error)]


def _read_file(rule_file: RuleFile) -> tuple[list[SigmaDocument], list[Problem]]:
    display = rule_file.display
    try:
        data = _file_bytes(rule_file.location)
    except _NotRead as refused:
        return [], [_problem(display, 0, 0, refused.code, refused.message)]
    except OSError as error:
        return [], [_problem(display, 0, 0, Code.UNREADABLE, f"the file cannot be read: {error.strerror}")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        return [], [_problem(display, line, column, Code.NOT_UTF8, f"byte 0x{data[error.start]:02x} is not valid UTF-8; rules must be UTF-8 text")]
    return load_text(text, rule_file.root, rule_file.relative)


class _NotRead(Exception):
    """A file refused before its text is read: why, as a problem's code and message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _file_bytes(location: str) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES, with one open and one stat."""
    # O_NONBLOCK: a pipe named like a rule is refused at once instead of waiting for a writer
    descriptor = os.open(location, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise _NotRead(Code.UNREADABLE, "the file is not a regular file (a pipe or a device?); it is not read")
        data = b""
        if status.st_size <= MAX_FILE_BYTES:
            data = os.read(descriptor, status.st_size + 1)
            while len(data) <= MAX_FILE_BYTES and (more := os.read(descriptor, 1 << 16)):  # it grew meanwhile
                data += more
        size = max(status.st_size, len(data))
        if size > MAX_FILE_BYTES:
            raise _NotRead(Code.FILE_TOO_LARGE, f"the file has {size:,} bytes, more than the {MAX_FILE_BYTES:,} a rule may have")
        return data
    finally:
        os.close(descriptor)


def load_text(text: str, root: str, relative: str) -> tuple[list[SigmaDocument], list[Problem]]:
    """The documents of one file's text; `root` and `relative` say where it came from."""
    display = display_path(root, relative)
    problems: list[Problem] = []
    if not text.strip():
        return [], [_problem(display, 0, 0, Code.EMPTY_FILE, "the file is empty: there is no rule in it")]
    try:
        yaml_documents = list(load_documents(text))
    except YamlError as error:
        return [], [_problem(display, error.line, error.column, error.code, error.message)]

    lines = text.splitlines(keepends=True)
    present = [document for document in yaml_documents if document.data is not None]
    if not present:
        return [], [_problem(display, 0, 0, Code.EMPTY_FILE, "the file holds only empty YAML documents")]
    documents: list[SigmaDocument] = []
    collection = _Collection(sum(yaml_document.characters for yaml_document in yaml_documents))
    for index, (yaml_document, own_text) in enumerate(_with_own_text(text, lines, yaml_documents)):
        if yaml_document.data is None:
            continue
        problems.extend(_duplicate_key_problems(display, yaml_document))
        data = _rule_map(yaml_document, own_text, collection, display, problems)
        if data is _PAST_LIMIT:
            break
        if data is None:
            continue
        source = RuleSource(
            root=root,
            path=relative,
            document=index,
            line=yaml_document.line,
            raw_text=collection.global_text + own_text if collection.global_part is not None else own_text,
            documents_in_file=len(present),
        )
        reader = DocumentReader(display, problems, lines)
        try:
            documents.append(reader.document(data, source))
        except RuleError as error:
            problems.append(error.problem)
    return documents, problems


def _with_own_text(text: str, lines: list[str], yaml_documents: list[YamlDocument]) -> Iterator[tuple[YamlDocument, str]]:
    """Each YAML document with its own lines of the file's text."""
    slice_start = 0
    for index, yaml_document in enumerate(yaml_documents):
        slice_end = len(lines) if index == len(yaml_documents) - 1 else yaml_document.end_line - 1
        yield yaml_document, text if len(yaml_documents) == 1 else "".join(lines[slice_start:slice_end])
        slice_start = slice_end


#: What `_rule_map` returns when the file's copies pass the expansion limit: stop reading the file.
_PAST_LIMIT = YamlMap()


def _rule_map(yaml_document: YamlDocument, own_text: str, collection: "_Collection", display: str, problems: list[Problem]) -> YamlMap | None:
    """The map of a rule document, with the collection actions applied; None when it is no rule."""
    data = yaml_document.data
    if not isinstance(data, YamlMap):
        problems.append(_problem(display, yaml_document.line, 1, Code.NOT_A_MAP, f"a Sigma document must be a map of keys, not {describe(data)}"))
        return None
    action = data.get("action")
    if action == "global":
        collection.global_part, collection.global_text, collection.global_cost = data, own_text, yaml_document.characters + len(own_text)
        return None
    if action == "reset":
        collection.global_part, collection.global_text, collection.global_cost = None, "", 0
        return None
    if action is not None and action != "repeat":
        line, column = data.value_position("action")
        problems.append(_problem(display, line, column, Code.UNKNOWN_ACTION, f"unknown collection action '{action}' (Sigma knows global, reset and repeat)"))
        return None
    data = collection.complete(data, yaml_document.characters, repeat=action == "repeat")
    if data is None:
        problems.append(_problem(display, yaml_document.line, 1, Code.EXPANDS_TOO_LARGE, f"with the parts that 'action: global' and 'action: repeat' copy into its documents, the file expands to more than {MAX_EXPANDED_CHARACTERS:,} characters; the documents from here on are not read"))
        return _PAST_LIMIT
    if not any(key in data for key in RULE_KEYS):  # a CI workflow, a config file: say so once, calmly
        keys = ", ".join(str(key) for key in list(data.positions())[:5])  # as written (`on`, not True)
        problems.append(_problem(display, yaml_document.line, 1, Code.NOT_A_RULE, f"not a rule: the YAML has none of title, detection, correlation or filter (its keys: {keys[:120]})", Severity.INFO))
        return None
    return data


def _duplicate_key_problems(display: str, document: YamlDocument) -> list[Problem]:
    return [
        _problem(display, duplicate.line, duplicate.column, Code.DUPLICATE_KEY,
                 f"duplicate key '{duplicate.key[:60]}' on lines {duplicate.first_line} and {duplicate.line}: "
                 f"the value of line {duplicate.first_line} is lost, the rule is read with the value of line {duplicate.line}")
        for duplicate in document.duplicates
    ]


class _Collection:
    """Sigma's collection actions over the documents of one file, and what their copies cost.

    `action: global` lays its part (and its text) under every later document, `action: repeat` the
    previous document: each copy counts against the file's limit of expanded characters, since
    every document is analysed and shown in full (a 10 MB document repeated 1,000 times is 10 GB)."""

    def __init__(self, characters: int):
        self.used = characters  # the documents as written, aliases expanded
        self.global_part: YamlMap | None = None
        self.global_text = ""
        self.global_cost = 0  # its characters and its text, paid again for every document it completes
        self.previous: YamlMap | None = None
        self.previous_cost = 0

    def complete(self, data: YamlMap, characters: int, repeat: bool) -> YamlMap | None:
        """The document with the previous one (repeat) and the global part under it; None past the limit."""
        cost = characters
        if repeat and self.previous is not None:
            data = _merged(self.previous, data)
            cost += self.previous_cost
        if self.global_part is not None:
            data = _merged(self.global_part, data)
            cost += self.global_cost
        self.used += cost - characters  # its own characters are counted already
        if self.used > MAX_EXPANDED_CHARACTERS:
            return None
        self.previous, self.previous_cost = data, cost
        return data


def _merged(base: YamlMap, override: YamlMap) -> YamlMap:
    """`override` laid over `base`, maps merged key by key, positions kept."""
    result = YamlMap(base, node=override.node)
    for key in base:
        result.placed(key, base)
    for key, value in override.items():
        current = result.get(key)
        result[key] = _merged(current, value) if isinstance(current, YamlMap) and isinstance(value, YamlMap) else value
        result.placed(key, override)
    result.pop("action", None)
    return result
