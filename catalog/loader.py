"""Loading: rule folders -> files -> YAML documents -> typed Sigma documents, or listed problems.

Nothing here raises for bad input: every file either yields documents or problems (often both:
warnings ride along with a document that still loads).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from catalog.model import RuleSource, SigmaDocument, display_path
from catalog.problems import DUPLICATE_KEY, NOT_A_RULE, Problem, RuleError, Severity
from catalog.reader import DocumentReader, describe
from catalog.reader import problem as _problem
from catalog.yamlsafe import YamlDocument, YamlError, YamlMap, load_documents

#: Larger files are refused before parsing: no real rule comes near this.
MAX_FILE_BYTES = 20 * 1024 * 1024
RULE_SUFFIXES = (".yml", ".yaml")

#: Keys that make a YAML document a rule of some kind; a document with none of them is something else.
RULE_KEYS = ("title", "detection", "correlation", "filter")


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
            problems.append(_problem(root_text, 0, 0, "missing-folder", "the rule folder does not exist"))
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
                    problems.append(_problem(display_path(root_text, prefix + name), 0, 0, "symlink-outside", "the folder is a symbolic link to a place outside the rule folder; its files are not read"))
            for name in names:
                if not name.endswith(RULE_SUFFIXES):
                    continue
                full = os.path.join(directory, name)
                if _links_outside(full, real_base):
                    problems.append(_problem(display_path(root_text, prefix + name), 0, 0, "symlink-outside", "the file is a symbolic link to a place outside the rule folder; it is not read"))
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
            return [], [_problem(display, 0, 0, "file-too-large", f"the file has {size:,} bytes, more than the {MAX_FILE_BYTES:,} a rule may have")]
        data = rule_file.path.read_bytes()
    except OSError as error:
        return [], [_problem(display, 0, 0, "unreadable", f"the file cannot be read: {error.strerror}")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        return [], [_problem(display, line, column, "not-utf8", f"byte 0x{data[error.start]:02x} is not valid UTF-8; rules must be UTF-8 text")]
    return load_text(text, rule_file.root, rule_file.relative)


def load_text(text: str, root: str, relative: str) -> tuple[list[SigmaDocument], list[Problem]]:
    """The documents of one file's text; `root` and `relative` say where it came from."""
    display = display_path(root, relative)
    problems: list[Problem] = []
    if not text.strip():
        return [], [_problem(display, 0, 0, "empty-file", "the file is empty: there is no rule in it")]
    try:
        yaml_documents = list(load_documents(text))
    except YamlError as error:
        return [], [_problem(display, error.line, error.column, "yaml", error.message)]

    lines = text.splitlines(keepends=True)
    present = [document for document in yaml_documents if document.data is not None]
    if not present:
        return [], [_problem(display, 0, 0, "empty-file", "the file holds only empty YAML documents")]
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
        problems.extend(_duplicate_key_problems(display, yaml_document))
        if not isinstance(data, YamlMap):
            problems.append(_problem(display, yaml_document.line, 1, "not-a-map", f"a Sigma document must be a map of keys, not {describe(data)}"))
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
            problems.append(_problem(display, line, column, "unknown-action", f"unknown collection action '{action}' (Sigma knows global, reset and repeat)"))
            continue
        if global_part is not None:
            data = _merged(global_part, data)
        if not any(key in data for key in RULE_KEYS):  # a CI workflow, a config file: say so once, calmly
            keys = ", ".join(str(key) for key in list(data.positions())[:5])  # as written (`on`, not True)
            problems.append(_problem(display, yaml_document.line, 1, NOT_A_RULE, f"not a rule: the YAML has none of title, detection, correlation or filter (its keys: {keys[:120]})", Severity.INFO))
            continue
        previous = data
        source = RuleSource(
            root=root,
            path=relative,
            document=index,
            line=yaml_document.line,
            raw_text=global_text + own_text if global_part is not None else own_text,
            documents_in_file=len(present),
        )
        reader = DocumentReader(display, problems, lines)
        try:
            documents.append(reader.document(data, source))
        except RuleError as error:
            problems.append(error.problem)
    return documents, problems


def _duplicate_key_problems(display: str, document: YamlDocument) -> list[Problem]:
    return [
        _problem(display, duplicate.line, duplicate.column, DUPLICATE_KEY,
                 f"duplicate key '{duplicate.key[:60]}' on lines {duplicate.first_line} and {duplicate.line}: "
                 f"the value of line {duplicate.first_line} is lost, the rule is read with the value of line {duplicate.line}")
        for duplicate in document.duplicates
    ]


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
