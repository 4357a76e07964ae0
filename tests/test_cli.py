"""`catalog analyze`: the summary line, the JSON it writes, and that every file is accounted for."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.cli import main

PROJECT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(
    r"^(?P<files>\d+) files, (?P<rules>\d+) rules, (?P<correlations>\d+) correlations, (?P<filters>\d+) filters; "
    r"(?P<errors>\d+) errors, (?P<warnings>\d+) warnings, (?P<notices>\d+) notices; \d+\.\d\d s$"
)


def rule_files(folder: Path) -> list[str]:
    return sorted(path.relative_to(PROJECT).as_posix() for path in folder.rglob("*") if path.suffix in (".yml", ".yaml"))


def check_accounts_for_every_file(data: dict, expected_files: list[str]) -> None:
    listed = [item["path"] for item in data["files"]]
    assert sorted(listed) == expected_files
    assert data["summary"]["files"] == len(expected_files)
    sources = {(rule["source"]["root"].rstrip("/") + "/" + rule["source"]["path"]) for rule in data["rules"]}
    problem_paths = {problem["path"] for problem in data["problems"]}
    slugs = {rule["slug"] for rule in data["rules"]}
    for item in data["files"]:
        assert item["path"] in sources or item["path"] in problem_paths, item
        assert item["documents"] or item["problems"] > 0, item
        assert set(item["documents"]) <= slugs
        assert item["problems"] == sum(1 for problem in data["problems"] if problem["path"] == item["path"])
    assert sum(len(item["documents"]) for item in data["files"]) == len(data["rules"]) == data["summary"]["documents"]


@pytest.fixture
def in_project(monkeypatch):
    monkeypatch.chdir(PROJECT)


def test_analyze_writes_json(in_project, tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(["analyze", "rules", "--json", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    match = SUMMARY.match(printed[-1])
    assert match, printed[-1]
    data = json.loads(out.read_text(encoding="utf-8"))
    summary = data["summary"]
    assert {key: int(value) for key, value in match.groupdict().items()} == {
        key: summary[key] for key in ("files", "rules", "correlations", "filters", "errors", "warnings", "notices")
    }
    assert summary["files"] == len(rule_files(PROJECT / "rules"))
    assert summary["rules"] + summary["correlations"] + summary["filters"] == summary["documents"] == len(data["rules"])
    assert summary["correlations"] > 0 and summary["filters"] > 0
    assert len(printed) - 1 == len(data["problems"])  # each problem printed once, then the summary
    check_accounts_for_every_file(data, rule_files(PROJECT / "rules"))


def test_analyze_json_content(in_project, tmp_path, capsys):
    out = tmp_path / "out.json"
    main(["analyze", "rules", "--json", str(out), "--quiet"])
    assert len(capsys.readouterr().out.splitlines()) == 1  # only the summary
    data = json.loads(out.read_text(encoding="utf-8"))
    by_path = {rule["source"]["path"]: rule for rule in data["rules"]}
    reference = by_path["windows/image_load/wmi-module-loaded-by-suspicious-process.yml"]
    assert reference["kind"] == "rule"
    analysis = reference["analysis"]
    assert [stage["title"] for stage in analysis["stages"]] == ["condition", "selection", "not filter"]
    (exclusion,) = analysis["exclusions"]
    assert exclusion["identifiers"] == ["filter"] and exclusion["combined"] is False
    assert exclusion["searches"] == [
        {
            "identifier": "filter",
            "alternatives": [[{"field": "Image", "kind": "ends_with", "values": ["\\svchost.exe", "\\wmiapsrv.exe", "\\wmiprvse.exe"], "all": False, "field_reference": False}]],
        }
    ]
    kinds = [(indicator["field"], indicator["kind"]) for indicator in analysis["indicators"]]
    assert kinds == [("EventID", "equals")] + [("ImageLoaded", "ends_with")] * 9
    assert all(indicator["corpus_count"] >= 1 for indicator in analysis["indicators"])
    correlations = [rule for rule in data["rules"] if rule["kind"] == "correlation"]
    assert all(rule["targets"] for rule in correlations)
    for shared in data["shared_indicators"]:
        assert len(shared["rules"]) > 1


def test_analyze_json_to_stdout(in_project, capsys):
    assert main(["analyze", "rules/windows/image_load", "--json", "-", "--no-attack"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert SUMMARY.match(captured.err.splitlines()[-1])
    assert data["summary"]["files"] == len(data["files"]) == len(rule_files(PROJECT / "rules/windows/image_load"))


def test_problems_are_printed_and_counted(tmp_path, capsys):
    (tmp_path / "good.yml").write_text("title: t\nlogsource: {product: windows}\ndetection:\n    s: {F: 1}\n    condition: s\n", encoding="utf-8")
    (tmp_path / "bad.yml").write_text("title: t\nlogsource: {product: windows}\ndetection:\n    s: {F: 1}\n    condition: s and x\n", encoding="utf-8")
    (tmp_path / "empty.yml").write_text("", encoding="utf-8")
    out = tmp_path / "out.json"
    assert main(["analyze", str(tmp_path), "--json", str(out), "--no-attack"]) == 0  # bad rules are reported, not fatal
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == [
        f"{tmp_path}/bad.yml:5:22: error: condition 's and x': 'x' is not a search identifier defined in detection [condition]",
        f"{tmp_path}/empty.yml: error: the file is empty: there is no rule in it [empty-file]",
    ]
    assert printed[2].startswith("3 files, 1 rules, 0 correlations, 0 filters; 2 errors, 0 warnings, 0 notices; ")
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [(item["path"].rsplit("/", 1)[1], len(item["documents"]), item["problems"]) for item in data["files"]] == [
        ("bad.yml", 0, 1),
        ("empty.yml", 0, 1),
        ("good.yml", 1, 0),
    ]


def test_python_dash_m_catalog(tmp_path):
    out = tmp_path / "out.json"
    completed = subprocess.run(
        [sys.executable, "-m", "catalog", "analyze", "rules", "--json", str(out)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert SUMMARY.match(completed.stdout.splitlines()[-1]), completed.stdout
    check_accounts_for_every_file(json.loads(out.read_text(encoding="utf-8")), rule_files(PROJECT / "rules"))


def test_usage_error_exit_code(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["analyze"])
    assert raised.value.code == 2
