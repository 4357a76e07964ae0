"""`catalog check`: validate rule folders without building the site, for people and for CI.

Every finding comes from the engine itself (`build_catalog`'s problems: YAML and duplicate
keys, required fields and types, condition syntax, undefined and unused search identifiers,
modifiers, duplicate ids, unresolved correlation/filter references, ATT&CK findings), so
`catalog check`, `catalog analyze` and the site's Problems page report the same ones. This module
adds the output formats, the exit code, and optionally pySigma's own validators run fully
offline (`--pysigma`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence, TextIO

from catalog.findings import add_catalog_findings
from catalog.history import history_or_none
from catalog.pipeline import Catalog, build_catalog
from catalog.problems import Code, Problem, Severity, one_line, printable, severity_counts

if TYPE_CHECKING:
    from catalog.attack import AttackKnowledge

DEFAULT_FOLDERS = ("rules",)

FORMATS = ("text", "json", "github", "junit", "gitlab")


class CheckError(Exception):
    """The check cannot run as asked (not: the rules have problems); one line for people."""


@dataclass(slots=True)
class CheckResult:
    paths: list[str]
    problems: list[Problem]
    files: int = 0
    documents: int = 0
    seconds: float = 0.0
    attack_release: str | None = None
    catalog: Catalog | None = field(default=None, repr=False)

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity is Severity.WARNING]

    def failed(self, strict: bool = False) -> bool:
        return bool(self.errors or (strict and self.warnings))

    def by_code(self) -> Counter:
        return Counter(problem.code for problem in self.problems)

    def summary(self) -> dict:
        return {
            "files": self.files,
            "documents": self.documents,
            **severity_counts(self.problems),
            "seconds": round(self.seconds, 3),
            "attack_release": self.attack_release,
            "by_code": dict(sorted(self.by_code().items())),
        }


# --- running the checks -------------------------------------------------------------------


def run_check(
    paths: Sequence[str | os.PathLike],
    attack: "AttackKnowledge | None" = None,
    *,
    pysigma: bool = False,
) -> CheckResult:
    """Every finding about the rules under `paths`, sorted by file, line and column."""
    started = time.perf_counter()
    catalog = build_catalog(paths, attack=attack)
    add_catalog_findings(catalog, history_or_none(paths))
    problems = list(catalog.problems)  # exactly the engine's: the same as analyze and the site
    if pysigma:
        if attack is None:
            raise CheckError("the pySigma validators need the ATT&CK knowledge (they must not download it)")
        problems.extend(dict.fromkeys(pysigma_problems(catalog, attack)))
    problems.sort(key=_order)
    return CheckResult(
        paths=[os.fspath(path) for path in paths],
        problems=problems,
        files=len(catalog.files),
        documents=len(catalog.entries),
        seconds=time.perf_counter() - started,
        attack_release=catalog.attack_release,
        catalog=catalog,
    )


def _order(problem: Problem) -> tuple:
    return (problem.path, problem.line, problem.column, problem.severity is not Severity.ERROR, problem.code, problem.message)


# --- pySigma, offline ---------------------------------------------------------------------

#: pySigma validators left out: D3FEND data is not shipped (this one would need the internet), and
#: the TLP v1-only / v2-only checks contradict each other (TLPTagValidator accepts both versions).
PYSIGMA_SKIPPED = {"D3FENDTagValidator", "TLPv1TagValidator", "TLPv2TagValidator"}


def point_pysigma_at(kb: "AttackKnowledge") -> None:
    """Make pySigma's ATT&CK data come from our snapshot instead of the internet.

    `sigma.data.mitre_attack` loads its tables lazily through a module `__getattr__`, which downloads
    the STIX bundle from GitHub (or reads its disk cache) on first access. A module `__getattr__` is
    only consulted for names the module does not have, so setting the tables as module attributes
    answers every access from our data and the loader never runs. Like pySigma's own loader, the
    tables leave out revoked and deprecated objects. Our trimmed snapshot has no data sources and
    no mitigations: those tables stay empty (see `_pysigma_issue_wanted`).
    """
    from sigma.data import mitre_attack

    techniques = [t for t in kb.all_techniques if not t.revoked and not t.deprecated]
    tables = {
        "mitre_attack_version": kb.release,
        "mitre_attack_tactics": {tactic.id: tactic.shortname for tactic in kb.tactics},
        "mitre_attack_techniques": {t.id: t.name for t in techniques},
        "mitre_attack_techniques_tactics_mapping": {t.id: list(t.tactics) for t in techniques},
        "mitre_attack_intrusion_sets": {g.id: g.name for g in kb.all_groups if not g.revoked_by and not g.deprecated},
        "mitre_attack_software": {s.id: s.name for s in kb.all_software if not s.revoked_by and not s.deprecated},
        "mitre_attack_datasources": {},
        "mitre_attack_mitigations": {},
    }
    for name, value in tables.items():
        setattr(mitre_attack, name, value)


def pysigma_problems(catalog: Catalog, kb: "AttackKnowledge") -> list[Problem]:
    """pySigma's core validators (and its parser's errors) over the files the engine could read.

    Only files that our safe loader read without a YAML error are handed to pySigma: its parser is
    PyYAML's plain safe_load, which has no defence against alias bombs. Issues of pySigma's HIGH
    severity are errors, the others warnings; every code starts with `pysigma-`.
    """
    try:
        from sigma.collection import SigmaCollection
        from sigma.exceptions import SigmaRuleLocation
        from sigma.validation import SigmaValidator
    except ImportError as error:  # pragma: no cover - depends on the extra being installed
        raise CheckError("--pysigma needs pySigma: pip install '.[pysigma]'") from error
    point_pysigma_at(kb)
    from sigma.validators.base import SigmaValidationIssueSeverity
    from sigma.validators.core import validators as core_validators

    unreadable = {problem.path for problem in catalog.problems if problem.code in Code.UNREADABLE_FILE}
    lines: dict[tuple[str, str], int] = {}
    for entry in catalog.entries:
        source = entry.document.source
        for key in (entry.document.id, entry.document.title):
            if key:
                lines.setdefault((source.file_display, key), source.line)
    chosen = [cls for _, cls in sorted(core_validators.items()) if cls.__name__ not in PYSIGMA_SKIPPED]
    validator = SigmaValidator(chosen)
    found: list[Problem] = []
    rules: list = []
    where: dict[int, str] = {}  # id(rule) -> file
    for rule_file in catalog.files:
        if rule_file.display not in unreadable:
            _pysigma_parse(rule_file, SigmaCollection, SigmaRuleLocation, rules, where, found)
    # one validator over every rule, so the checks that compare rules (ids, titles) see them all
    issues = []
    for rule in rules:
        try:
            issues.extend(validator.validate_rule(rule))
        except Exception as error:  # a validator that chokes on one rule must not stop the others
            display = where[id(rule)]
            found.append(Problem(display, lines.get((display, str(rule.id) if rule.id else ""), 0), 0, Severity.WARNING,
                                 Code.PYSIGMA_PARSE, f"pySigma cannot validate '{rule.title}': {one_line(error)}"))
    issues.extend(validator.finalize())
    for issue in issues:
        if not _pysigma_issue_wanted(issue):
            continue
        severity = Severity.ERROR if issue.severity is SigmaValidationIssueSeverity.HIGH else Severity.WARNING
        code, message = Code.PYSIGMA_PREFIX + _issue_code(issue), _issue_message(issue)
        for rule in issue.rules or [None]:
            display = where.get(id(rule), "") if rule is not None else ""
            line = 0
            if rule is not None:
                line = lines.get((display, str(rule.id) if rule.id else ""), 0) or lines.get((display, rule.title), 0)
            found.append(Problem(display or "(pySigma)", line, 1 if line else 0, severity, code, message))
    return found


def _pysigma_parse(rule_file, collection_type, location_type, rules: list, where: dict[int, str], found: list[Problem]) -> None:
    """pySigma's reading of one file: its rules go to `rules` (and `where`), its errors to `found`."""
    display = rule_file.display
    try:
        text = rule_file.path.read_text(encoding="utf-8-sig")
        collection = collection_type.from_yaml(text, collect_errors=True, source=location_type(display), resolve_references=False)
    except Exception as error:  # pySigma raises many kinds for broken input; ours has said why
        found.append(Problem(display, 0, 0, Severity.WARNING, Code.PYSIGMA_PARSE, f"pySigma cannot read the file: {one_line(error)}"))
        return
    for error in collection.errors:
        found.append(Problem(display, 0, 0, Severity.WARNING, Code.PYSIGMA_PARSE, f"pySigma: {one_line(error)}"))
    for rule in collection.rules:
        where[id(rule)] = display
        rules.append(rule)




def _pysigma_issue_wanted(issue: object) -> bool:
    """Drop issues about ATT&CK data sources and mitigations (ds0005, m1040): our snapshot leaves
    them out, so pySigma would call every such tag invalid."""
    if type(issue).__name__ == "InvalidATTACKTagIssue":
        name = getattr(getattr(issue, "tag", None), "name", "") or ""
        if name[:2] == "ds" or (name[:1] == "m" and name[1:].isdigit()):
            return False
    return True


def _issue_code(issue: object) -> str:
    from sigma.validators.core import validator_classname_to_identifier

    name = type(issue).__name__
    return validator_classname_to_identifier(name[:-5] if name.endswith("Issue") else name)


def _issue_message(issue: object) -> str:
    from dataclasses import fields

    details = []
    for item in fields(issue):  # type: ignore[arg-type]
        if item.name in ("rules", "severity", "description"):
            continue
        value = getattr(issue, item.name)
        text = str(value) if value is not None else ""
        if text and text not in ("[]", "()"):
            details.append(f"{item.name}={text}")
    description = getattr(issue, "description", "pySigma validation issue")
    return f"pySigma: {description}" + (f" ({', '.join(details)})" if details else "")


# --- which folders ------------------------------------------------------------------------


def default_paths(config_file: str | os.PathLike = "mkdocs.yml") -> list[str]:
    """The rule folders of the catalog plugin in `config_file` (as the plugin reads its options),
    else `rules`; CheckError when the plugin's entry there is not valid."""
    from catalog.site.config import ConfigError, rule_folders

    try:
        return rule_folders(config_file) or list(DEFAULT_FOLDERS)
    except ConfigError as error:
        raise CheckError(str(error)) from None


# --- output -------------------------------------------------------------------------------


def write_report(result: CheckResult, output_format: str, out: TextIO, strict: bool = False) -> None:
    if output_format in ("junit", "gitlab"):  # the reports CI systems read (catalog/check_reports.py)
        from catalog.check_reports import gitlab_report, junit_report

        if output_format == "junit":
            junit_report(result, out, strict)
        else:
            gitlab_report(result, out)
        return
    if output_format == "json":
        json.dump(
            {
                "paths": result.paths,
                "strict": strict,
                "failed": result.failed(strict),
                "summary": result.summary(),
                "problems": [problem.to_json() for problem in result.problems],
            },
            out,
            indent=1,
            ensure_ascii=False,
        )
        out.write("\n")
        return
    if output_format == "github":
        for problem in result.problems:
            out.write(github_command(problem) + "\n")
    else:
        for problem in result.problems:
            out.write(f"{problem}\n")
    out.write(summary_line(result, strict) + "\n")


def summary_line(result: CheckResult, strict: bool = False) -> str:
    verdict = "FAILED" if result.failed(strict) else "ok"
    attack = f", ATT&CK Enterprise v{result.attack_release}" if result.attack_release else ""
    return (
        f"catalog check: {verdict}: {result.files} files, {result.documents} documents; "
        f"{len(result.errors)} errors, {len(result.warnings)} warnings{' (strict: warnings fail)' if strict else ''}, "
        f"{severity_counts(result.problems)['notices']} notices"
        f"{attack}; {result.seconds:.2f} s"
    )


def github_command(problem: Problem) -> str:
    """A GitHub Actions workflow command that annotates the file in the pull request."""
    command = "error" if problem.severity is Severity.ERROR else "warning"
    properties = [("file", problem.path)]
    if problem.line:
        properties.append(("line", str(problem.line)))
        properties.append(("col", str(problem.column or 1)))
    properties.append(("title", f"sigma {problem.code}"))
    # GitHub's escapes first (CR and LF as %0D %0A), then any other control character as an escape
    rendered = ",".join(f"{key}={printable(escape_property(value))}" for key, value in properties)
    return f"::{command} {rendered}::{printable(escape_data(problem.message))}"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


# --- the command --------------------------------------------------------------------------


def register(commands) -> None:
    """Add `check` to the catalog CLI's subcommands."""
    check = commands.add_parser("check", help="validate rules without building the site (exit 1 on errors)")
    check.add_argument("paths", nargs="*", help="rule folders or files (default: the plugin's folders in ./mkdocs.yml, else 'rules')")
    check.add_argument("--format", choices=FORMATS, default="text", help="text (default), json, github (workflow commands that annotate a pull request), "
                       "junit (JUnit XML) or gitlab (GitLab Code Quality JSON)")
    check.add_argument("--strict", action="store_true", help="warnings fail too")
    check.add_argument("--config", default="mkdocs.yml", help="mkdocs.yml to take the default rule folders from")
    check.add_argument("--attack-data", metavar="PATH", help="ATT&CK STIX bundle or cti folder to check tags against (default: the shipped snapshot)")
    check.add_argument("--no-attack", action="store_true", help="do not check ATT&CK tags")
    check.add_argument("--pysigma", action="store_true", help="also run pySigma's validators (offline; needs pip install '.[pysigma]')")
    check.set_defaults(handler=run_command)


def run_command(arguments) -> int:
    try:
        paths = arguments.paths or default_paths(arguments.config)
    except CheckError as error:
        print(f"catalog check: error: {error}", file=sys.stderr)
        return 2
    kb = None
    if not arguments.no_attack or arguments.pysigma:
        from catalog.attack import AttackDataError, load_knowledge

        try:
            kb = load_knowledge(arguments.attack_data)
        except AttackDataError as error:
            print(f"catalog check: error: {error}", file=sys.stderr)
            return 2
    try:
        result = run_check(paths, kb, pysigma=arguments.pysigma)
    except CheckError as error:  # e.g. --pysigma without pySigma installed
        print(f"catalog check: error: {error}", file=sys.stderr)
        return 2
    write_report(result, arguments.format, sys.stdout, arguments.strict)
    return 1 if result.failed(arguments.strict) else 0

