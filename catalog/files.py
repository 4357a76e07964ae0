"""Finding the rule files of rule folders, and deciding which symbolic links are followed.

A rule folder may not make the build read a file elsewhere on the machine: links out of it are
refused, links in a loop are listed, linked folders are never entered (their files are read where
they really are).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from catalog.model import display_path
from catalog.problems import Code, Problem, Severity

RULE_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True, slots=True)
class RuleFile:
    root: str  # the rule folder as given
    relative: str  # posix path inside the folder
    location: str  # where it is read from (a string: a Path each cost mkdocs serve's rescans a tenth of a second)

    @property
    def path(self) -> Path:
        return Path(self.location)

    @property
    def display(self) -> str:
        return display_path(self.root, self.relative)


def discover(roots: Sequence[str | os.PathLike]) -> tuple[list[RuleFile], list[Problem]]:
    """Every rule file under the folders, sorted by folder then path, symlinks kept inside."""
    files: list[RuleFile] = []
    problems: list[Problem] = []
    for root in roots:
        root_text = os.fspath(root)
        base = Path(root_text)
        if base.is_file():
            files.append(RuleFile(str(base.parent), base.name, root_text))
            continue
        if not base.is_dir():
            problems.append(Problem(root_text, 0, 0, Severity.ERROR, Code.MISSING_FOLDER, "the rule folder does not exist"))
            continue
        real_base = base.resolve()
        found = _walk(root_text, real_base, problems)
        files.extend(sorted(found, key=lambda rule_file: rule_file.relative))
    return files, problems


def _walk(root_text: str, real_base: Path, problems: list[Problem]) -> list[RuleFile]:
    """The rule files under one folder. Plain strings and the directory entries' own file types
    while walking (no stat per file): this runs on every rebuild of mkdocs serve. Linked folders
    are never entered (their files are read where they really are); links out are refused."""
    found: list[RuleFile] = []
    folders = [("", root_text)]
    while folders:
        prefix, directory = folders.pop()
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            continue  # a folder that cannot be listed is skipped, as os.walk does
        for entry in entries:
            link = entry.is_symlink()
            try:
                is_folder = entry.is_dir()
            except OSError:
                is_folder = False
            display = display_path(root_text, prefix + entry.name)
            problem = _link_problem(entry.path, real_base, display, "folder" if is_folder else "file") if link else None
            if is_folder:
                if problem is not None:
                    problems.append(problem)
                elif not link:
                    folders.append((prefix + entry.name + "/", entry.path))
            elif problem is not None and (entry.name.endswith(RULE_SUFFIXES) or problem.code == Code.SYMLINK_LOOP):
                problems.append(problem)
            elif entry.name.endswith(RULE_SUFFIXES) and problem is None:
                found.append(RuleFile(root_text, prefix + entry.name, entry.path))
    return found


def _link_problem(path: str, real_base: Path, display: str, kind: str) -> Problem | None:
    """Why a symbolic link is not followed: it loops, or leads out of the rule folder (None: it
    stays inside). Links out are refused so a rule folder cannot make the build read (and
    publish) other files of the machine."""
    try:
        target = Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        return None  # a dangling link: its file cannot be read, which reading it will say
    except (OSError, RuntimeError):
        return Problem(display, 0, 0, Severity.ERROR, Code.SYMLINK_LOOP, f"the {kind} is a symbolic link that leads back to itself (a loop); it is not read")
    if target.is_relative_to(real_base):
        return None
    detail = "its files are not read" if kind == "folder" else "it is not read"
    return Problem(display, 0, 0, Severity.ERROR, Code.SYMLINK_OUTSIDE, f"the {kind} is a symbolic link to a place outside the rule folder; {detail}")
