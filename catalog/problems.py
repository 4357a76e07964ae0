"""Problems found in the input: every one names the file, the place in it and what is wrong."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Iterable

#: Characters that could make one reported line look like several, rewrite the terminal or reorder
#: the text shown: control characters (newlines included), line and paragraph separators, and
#: bidirectional overrides.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"  # a notice: nothing wrong with a rule (a file that is not a rule, a dialect left out)


class Code:
    """Every problem code (`Problem.code`), by what it means; the text is what reports show."""

    # reading files (loader)
    MISSING_FOLDER = "missing-folder"
    SYMLINK_OUTSIDE = "symlink-outside"
    SYMLINK_LOOP = "symlink-loop"  # a file or folder linked back to itself
    FILE_TOO_LARGE = "file-too-large"
    UNREADABLE = "unreadable"
    NOT_UTF8 = "not-utf8"
    EMPTY_FILE = "empty-file"
    YAML = "yaml"
    RECURSIVE_ALIAS = "recursive-alias"  # `x: &x [*x]`: an infinite value
    EXPANDS_TOO_LARGE = "expands-too-large"  # through aliases, global or repeat: past yamlsafe's limits
    DUPLICATE_KEY = "duplicate-key"  # a key written twice in one map; the rule loads with the last value
    #: reading or analysing failed in a way no other code describes (a bug or a resource limit)
    INTERNAL_ERROR = "internal-error"
    NOT_A_MAP = "not-a-map"
    UNKNOWN_ACTION = "unknown-action"
    # reading documents (loader)
    NOT_A_RULE = "not-a-rule"  # YAML with no title, detection, correlation or filter
    UNKNOWN_RULETYPE = "unknown-ruletype"  # a `ruletype` other than Sigma or Hayabusa; read as Sigma
    DIALECT_EXCLUDED = "dialect-excluded"  # a document of a dialect the build leaves out
    LOGSOURCE_LIST = "logsource-list"  # a log source field given as a list; every value kept
    SECTION_NAME_KEY = "section-name-key"  # `correlation:`/`filter:` text in a detection rule: a custom key
    SIMULATION = "simulation"  # a `simulation` entry that is not a map of text values; left out
    MISSING_FIELD = "missing-field"
    WRONG_TYPE = "wrong-type"
    ID_NOT_UUID = "id-not-uuid"
    UNKNOWN_STATUS = "unknown-status"
    UNKNOWN_LEVEL = "unknown-level"
    UNKNOWN_RELATION = "unknown-relation"
    MISSING_LOGSOURCE = "missing-logsource"
    NO_SEARCH = "no-search"
    IDENTIFIER_NAME = "identifier-name"
    UNUSED_IDENTIFIER = "unused-identifier"
    EMPTY_SEARCH = "empty-search"
    EMPTY_VALUES = "empty-values"
    MODIFIER = "modifier"
    CONDITION = "condition"
    UPPERCASE_OPERATOR = "uppercase-operator"
    LEGACY_AGGREGATION = "legacy-aggregation"
    TIMESPAN = "timespan"
    CORRELATION_TYPE = "correlation-type"
    CORRELATION_CONDITION = "correlation-condition"
    # the catalog as a whole (pipeline)
    DUPLICATE_ID = "duplicate-id"
    NAME_IS_OTHER_ID = "name-is-other-id"  # a `name` equal to another document's id: references go by id
    UNRESOLVED_REFERENCE = "unresolved-reference"
    # git history (revisions) and test evidence (evidence)
    MODIFIED_NOT_BUMPED = "modified-not-bumped"  # git changed the rule after its `modified` date
    REGRESSION_INFO_MISSING = "regression-info-missing"  # `regression_tests_path` names no readable file
    REGRESSION_INFO_MALFORMED = "regression-info-malformed"  # its info.yml is not SigmaHQ's schema
    PAGE_CAP = "page-cap"  # a rule with more tags or fields of its own than get a page (catalog.bounds)
    # ATT&CK tags (attack.mapping); reported with ATTACK_PREFIX
    UNKNOWN_TECHNIQUE = "unknown-technique"
    REVOKED_TECHNIQUE = "revoked-technique"
    DEPRECATED_TECHNIQUE = "deprecated-technique"
    UNKNOWN_GROUP = "unknown-group"
    REVOKED_GROUP = "revoked-group"
    UNKNOWN_SOFTWARE = "unknown-software"
    REVOKED_SOFTWARE = "revoked-software"
    UNKNOWN_TACTIC = "unknown-tactic"
    MALFORMED_TAG = "malformed-tag"
    TECHNIQUE_TACTIC_NOT_TAGGED = "technique-tactic-not-tagged"
    ATTACK_PREFIX = "attack-"
    # pySigma's validators (`catalog check --pysigma`): PYSIGMA_PREFIX + the validator's identifier
    PYSIGMA_PARSE = "pysigma-parse"
    PYSIGMA_PREFIX = "pysigma-"
    #: The ATT&CK codes (reported as ATTACK_PREFIX + code).
    ATTACK = frozenset({UNKNOWN_TECHNIQUE, REVOKED_TECHNIQUE, DEPRECATED_TECHNIQUE, UNKNOWN_GROUP, REVOKED_GROUP, UNKNOWN_SOFTWARE,
                        REVOKED_SOFTWARE, UNKNOWN_TACTIC, MALFORMED_TAG, TECHNIQUE_TACTIC_NOT_TAGGED})
    # conversions (catalog.conversions): an info finding per target a rule does not convert to,
    # CONVERSION_PREFIX + the target's name ("no-query-splunk")
    CONVERSION_PREFIX = "no-query-"
    # similar rules (catalog.similarity): `catalog check` warns of a likely duplicate
    LIKELY_DUPLICATE = "likely-duplicate"
    #: Files the engine could not read as YAML at all.
    UNREADABLE_FILE = frozenset({YAML, RECURSIVE_ALIAS, EXPANDS_TOO_LARGE, NOT_UTF8, FILE_TOO_LARGE, UNREADABLE, EMPTY_FILE, SYMLINK_OUTSIDE, SYMLINK_LOOP, INTERNAL_ERROR})


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
        """The problem on one line of text, whatever the rule's text holds (see `printable`)."""
        line = f"{printable(self.location)}: {self.severity.value}: {printable(self.message)} [{self.code}]"
        # CI systems read lines starting with `::` as commands: a file name may not start one
        return "./" + line if line.startswith("::") else line

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


def severity_counts(problems: "Iterable[Problem]") -> dict[str, int]:
    """How many errors, warnings and notices (info): the one tally every report shows."""
    counts = {"errors": 0, "warnings": 0, "notices": 0}
    names = {Severity.ERROR: "errors", Severity.WARNING: "warnings", Severity.INFO: "notices"}
    for problem in problems:
        counts[names[problem.severity]] += 1
    return counts


def printable(text: str) -> str:
    """`text` for a line of text output: every control, separator or bidirectional character
    written as an escape (`\\n`, `\\x1b`, `\\u202e`), so rule text cannot forge report or log lines."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match) -> str:
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    if named is not None:
        return named
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message for a one-line report: whitespace runs as one space, cut at `limit`."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RuleError(Exception):
    """Raised while reading one document; carries the problem to report instead of a traceback."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def internal_error(path: str, error: BaseException, step: str = "reading this file", line: int = 0) -> Problem:
    """The problem for an unexpected failure while handling one file: it costs that file only."""
    detail = one_line(error, 200) if str(error).strip() else ""
    message = f"{step} failed: {type(error).__name__}{': ' + detail if detail else ''} (a limit or a bug of the catalog; the other files are not affected)"
    return Problem(path, line, 1 if line else 0, Severity.ERROR, Code.INTERNAL_ERROR, message)
