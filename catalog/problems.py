"""Problems found in the input: every one names the file, the place in it and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"  # a notice: nothing is wrong with a rule (e.g. a file that is not a rule at all)


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about one place of one file (line and column are 1-based, 0 when unknown)."""

    path: str
    line: int
    column: int
    severity: Severity
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.severity.value}: {self.message} [{self.code}]"

    @property
    def location(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}:{self.column or 1}"
        return self.path

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
        }


class RuleError(Exception):
    """Raised while reading one document; carries the problem to report instead of a traceback."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


# --- Problem codes of the engine's reading of any Sigma repository (issue 8) --------------------
# Kept in their own block so they merge cleanly with the constants above; docs/analysis.md lists
# each with its severity and an example.
NOT_A_RULE = "not-a-rule"  # info: YAML that is not a rule (no title, detection, correlation or filter)
DUPLICATE_KEY = "duplicate-key"  # error: a key written twice in one map; the rule loads with the last value
LOGSOURCE_LIST = "logsource-list"  # warning: a log source field given as a list; every value kept
SECTION_NAME_KEY = "section-name-key"  # warning: `correlation:`/`filter:` text in a detection rule, read as a custom key
UNKNOWN_RULETYPE = "unknown-ruletype"  # info: a `ruletype` other than Sigma or Hayabusa; read as Sigma
DIALECT_EXCLUDED = "dialect-excluded"  # info: a document of a dialect the build leaves out
SIMULATION = "simulation"  # warning: a `simulation` entry that is not a map of text values; left out

# --- Problem codes of the limits that keep one file from costing more than its own page ----------
# (issue 10; kept apart from the codes above, which are written inline where they are raised)

#: An alias refers to the map or list it is part of (`x: &x [*x]`): the value would be infinite.
RECURSIVE_ALIAS = "recursive-alias"
#: Through aliases (or `action: global`), the file expands past yamlsafe's values or characters limit.
EXPANDS_TOO_LARGE = "expands-too-large"
#: A file or folder of the rule folder is a symbolic link that leads back to itself.
SYMLINK_LOOP = "symlink-loop"
#: Reading or analysing the file failed in a way no other code describes (a bug, or a resource
#: limit such as MemoryError or RecursionError); the message names the exception.
INTERNAL_ERROR = "internal-error"


def internal_error(path: str, error: BaseException, step: str = "reading this file", line: int = 0) -> Problem:
    """The problem for an unexpected failure while handling one file: it costs that file only."""
    detail = " ".join(str(error).split())[:200]
    message = f"{step} failed: {type(error).__name__}{': ' + detail if detail else ''} (a limit or a bug of the catalog; the other files are not affected)"
    return Problem(path, line, 1 if line else 0, Severity.ERROR, INTERNAL_ERROR, message)
