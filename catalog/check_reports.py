"""`catalog check --format junit|gitlab`: the check as the reports CI systems read.

- `junit`: JUnit XML, one test case per file checked; an error (a warning too with `--strict`) is a
  failure of its file, other warnings go to the case's output. GitLab shows it in the merge
  request's test report, and most CI systems read it.
- `gitlab`: GitLab's Code Quality report (a JSON array of `description`, `check_name`,
  `fingerprint`, `severity`, `location.path`, `location.lines.begin`), shown in the merge request
  and on the changed lines. Paths are as the check prints them, so run it from the repository root.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, TextIO
from xml.etree import ElementTree

from catalog.problems import Problem, Severity

if TYPE_CHECKING:
    from catalog.check import CheckResult

#: Characters XML 1.0 cannot carry at all (a rule's text may hold them): shown as `\xNN` / `\uNNNN`.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: Code Quality severities: info, minor, major, critical, blocker.
_GITLAB_SEVERITY = {Severity.ERROR: "major", Severity.WARNING: "minor"}


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda match: match.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)


def junit_report(result: "CheckResult", out: TextIO, strict: bool = False) -> None:
    """JUnit XML: a test case per file (files without problems pass), failures for what fails the check."""
    by_path: dict[str, list[Problem]] = {}
    catalog = result.catalog
    for rule_file in (catalog.files if catalog is not None else ()):
        by_path.setdefault(rule_file.display, [])
    for problem in result.problems:
        by_path.setdefault(problem.path, []).append(problem)
    failing = {Severity.ERROR, Severity.WARNING} if strict else {Severity.ERROR}
    suite = ElementTree.Element("testsuite", name="catalog check", time=f"{result.seconds:.3f}")
    failures = 0
    for path, problems in by_path.items():
        case = ElementTree.SubElement(suite, "testcase", classname="sigma", name=_xml_text(path), file=_xml_text(path))
        failed = [problem for problem in problems if problem.severity in failing]
        if failed:
            failures += 1
            failure = ElementTree.SubElement(case, "failure", type=failed[0].code, message=_xml_text(_one(failed)))
            failure.text = _xml_text("\n".join(str(problem) for problem in failed))
        others = [problem for problem in problems if problem.severity not in failing]
        if others:
            ElementTree.SubElement(case, "system-out").text = _xml_text("\n".join(str(problem) for problem in others))
    suite.set("tests", str(len(by_path)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suites = ElementTree.Element("testsuites", name="catalog check", tests=str(len(by_path)), failures=str(failures), errors="0")
    suites.append(suite)
    ElementTree.indent(suites)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ElementTree.tostring(suites, encoding="unicode"))
    out.write("\n")


def _one(problems: list[Problem]) -> str:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{first.location}: {first.message}{more}"


def gitlab_report(result: "CheckResult", out: TextIO) -> None:
    """GitLab Code Quality JSON. The fingerprint leaves the line out (a rule that moves down keeps
    its findings) and counts repeats, so each finding is its own and stays itself between runs."""
    seen: dict[tuple[str, str, str], int] = {}
    issues = []
    for problem in result.problems:
        key = (problem.path, problem.code, problem.message)
        seen[key] = seen.get(key, 0) + 1
        fingerprint = hashlib.sha256("\x1f".join((*key, str(seen[key]))).encode("utf-8", "surrogatepass")).hexdigest()
        issues.append({
            "type": "issue",
            "description": problem.message,
            "check_name": problem.code,
            "fingerprint": fingerprint,
            "severity": _GITLAB_SEVERITY.get(problem.severity, "info"),
            "location": {"path": problem.path, "lines": {"begin": max(problem.line, 1)}},
        })
    json.dump(issues, out, indent=1, ensure_ascii=True)
    out.write("\n")
