"""`catalog check --format junit|gitlab`: the reports GitLab (and other CI systems) read."""

from __future__ import annotations

import io
import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from catalog.check import run_check, write_report
from catalog.cli import main

GOOD = """title: Clean rule
id: c1111111-1111-4111-8111-111111111111
status: test
logsource: {product: linux, category: process_creation}
detection:
  pick: {CommandLine|contains: good}
  condition: pick
level: low
"""
#: a warning (a search identifier never used) whose message carries a control character from the rule
WARNED = GOOD.replace("Clean rule", "Warned rule").replace("c1111111", "c2222222").replace(
    "  condition:", "  \"unused\\x07twice\": {Image: x}\n  \"unused\\x07again\": {Image: y}\n  condition:")


@pytest.fixture()
def result(tmp_path: Path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "good.yml").write_text(GOOD, encoding="utf-8")
    (folder / "warned.yml").write_text(WARNED, encoding="utf-8")
    (folder / "broken.yml").write_text("title: [\n", encoding="utf-8")
    return run_check([str(folder)])


def report(result, output_format: str, strict: bool = False) -> str:
    out = io.StringIO()
    write_report(result, output_format, out, strict)
    return out.getvalue()


def test_junit_has_a_case_per_file_and_fails_errors(result):
    root = ElementTree.fromstring(report(result, "junit"))
    suite = root.find("testsuite")
    cases = {Path(case.get("name")).name: case for case in suite.findall("testcase")}
    assert set(cases) == {"good.yml", "warned.yml", "broken.yml"}
    assert (root.get("tests"), root.get("failures"), suite.get("failures")) == ("3", "1", "1")
    failure = cases["broken.yml"].find("failure")
    assert failure.get("type") == "yaml" and "broken.yml:2:1: error: YAML syntax error" in failure.text
    assert cases["good.yml"].find("failure") is None and cases["good.yml"].find("system-out") is None
    warned = cases["warned.yml"]
    assert warned.find("failure") is None and "[unused-identifier]" in warned.find("system-out").text
    assert "\\x07" in warned.find("system-out").text  # a control character XML cannot hold, written out


def test_junit_strict_fails_warnings(result):
    root = ElementTree.fromstring(report(result, "junit", strict=True))
    assert root.get("failures") == "2"
    failed = [case for case in root.iter("testcase") if case.find("failure") is not None]
    warned = next(case for case in failed if case.get("name").endswith("warned.yml"))
    assert warned.find("failure").get("message").endswith(" more)")  # the first warning, and how many others


def test_gitlab_code_quality(result):
    issues = json.loads(report(result, "gitlab"))
    assert all(set(issue) == {"type", "description", "check_name", "fingerprint", "severity", "location"} for issue in issues)
    by_code = {}
    for issue in issues:
        by_code.setdefault(issue["check_name"], []).append(issue)
    (broken,) = by_code["yaml"]
    assert broken["severity"] == "major" and broken["location"]["path"].endswith("broken.yml")
    assert broken["location"]["lines"]["begin"] == 2
    unused = by_code["unused-identifier"]
    assert len(unused) == 2 and {issue["severity"] for issue in unused} == {"minor"}
    assert all(issue["location"]["lines"]["begin"] >= 1 for issue in issues)
    fingerprints = [issue["fingerprint"] for issue in issues]
    assert len(set(fingerprints)) == len(fingerprints)
    assert fingerprints == [issue["fingerprint"] for issue in json.loads(report(result, "gitlab"))]  # stable between runs


def test_the_formats_on_the_command_line(result, capsys):
    folder = result.paths[0]
    assert main(["check", folder, "--no-attack", "--format", "gitlab"]) == 1
    assert json.loads(capsys.readouterr().out)
    assert main(["check", folder, "--no-attack", "--format", "junit"]) == 1
    assert ElementTree.fromstring(capsys.readouterr().out).tag == "testsuites"
