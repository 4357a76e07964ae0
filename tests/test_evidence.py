"""Test evidence (catalog.evidence): SigmaHQ's regression info.yml, its findings, JSON samples evaluated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog.evidence import Evaluations, EvidenceError, evaluate, evaluator_available, read_events, read_evidence
from catalog.pipeline import build_catalog
from catalog.problems import Code

RULE = """title: Archive Tool Writes To A Share
id: 0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
status: test
level: medium
tags:
    - attack.collection
    - attack.t1560.001
regression_tests_path: regression_data/rules/archive_share/info.yml
simulation:
    - type: atomic-red-team
      name: Compress a folder to a share
      technique: T1560.001
      atomic_guid: 11111111-2222-4333-8444-555555555555
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\\packer.exe'
        CommandLine|contains: '\\\\\\\\'
    filter:
        User: SYSTEM
    condition: selection and not filter
"""

INFO = """id: 9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a
description: N/A
date: 2026-02-01
author: test
rule_metadata:
    - id: 0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
      title: Archive Tool Writes To A Share
regression_tests_info:
    - name: Positive Detection Test
      type: evtx
      provider: Microsoft-Windows-Sysmon
      match_count: 2
      path: regression_data/rules/archive_share/0a1b2c3d.evtx
"""

EVENTS = [
    {"Event": {"System": {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational"},
               "EventData": {"Image": "C:\\Tools\\Packer.exe", "CommandLine": "packer a \\\\files\\drop\\x.pak", "User": "alice"}}},
    {"Event": {"System": {"EventID": 1}, "EventData": {"Image": "C:\\Tools\\packer.exe", "CommandLine": "packer a \\\\nas\\y.pak", "User": "bob"}}},
    {"Event": {"System": {"EventID": 1}, "EventData": {"Image": "C:\\Tools\\packer.exe", "CommandLine": "packer a \\\\nas\\z.pak", "User": "SYSTEM"}}},
    {"Event": {"System": {"EventID": 1}, "EventData": {"Image": "C:\\Tools\\packer.exe", "CommandLine": "packer a c:\\local.pak", "User": "carol"}}},
]


@pytest.fixture
def repo(tmp_path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "archive.yml").write_text(RULE, encoding="utf-8")
    data = tmp_path / "regression_data" / "rules" / "archive_share"
    data.mkdir(parents=True)
    (data / "info.yml").write_text(INFO, encoding="utf-8")
    (data / "0a1b2c3d.evtx").write_bytes(b"ElfFile\0")
    (data / "0a1b2c3d.json").write_text(json.dumps(EVENTS), encoding="utf-8")
    return tmp_path


def document(repo: Path):
    catalog = build_catalog([repo / "rules"])
    return catalog, catalog.entries[0].document


def test_info_yml_is_read_with_its_samples(repo):
    catalog, rule = document(repo)
    assert not [p for p in catalog.problems if p.code.startswith("regression")]
    evidence = read_evidence(rule)
    (sample,) = evidence.samples
    assert (sample.name, sample.type, sample.provider, sample.match_count) == ("Positive Detection Test", "evtx", "Microsoft-Windows-Sysmon", 2)
    assert sample.exists and sample.json_path == "regression_data/rules/archive_share/0a1b2c3d.json"
    assert rule.simulation[0].technique == "T1560.001"


@pytest.mark.parametrize("change, code, words", [
    (lambda data: (data / "info.yml").unlink(), Code.REGRESSION_INFO_MISSING, "names no file"),
    (lambda data: (data / "info.yml").write_text("regression_tests_info: [\n", encoding="utf-8"), Code.REGRESSION_INFO_MALFORMED, "cannot be read as YAML"),
    (lambda data: (data / "info.yml").write_text("regression_tests_info:\n  - path: x.evtx\n    match_count: many\n", encoding="utf-8"),
     Code.REGRESSION_INFO_MALFORMED, "whole-number match_count"),
    (lambda data: (data / "0a1b2c3d.evtx").unlink(), Code.REGRESSION_INFO_MISSING, "is not in the repository"),
])
def test_a_missing_or_malformed_info_yml_is_a_finding(repo, change, code, words):
    change(repo / "regression_data" / "rules" / "archive_share")
    catalog, _ = document(repo)
    (problem,) = [p for p in catalog.problems if p.code.startswith("regression")]
    assert problem.code == code and words in problem.message
    assert problem.path.endswith("archive.yml") and problem.line == 8  # the regression_tests_path line


def test_paths_may_not_leave_the_repository(repo, tmp_path):
    (repo / "rules" / "archive.yml").write_text(RULE.replace("regression_data/rules/archive_share/info.yml", "../../../etc/passwd"), encoding="utf-8")
    _, rule = document(repo)
    with pytest.raises(EvidenceError):
        read_evidence(rule)


def test_json_samples_in_every_shape_are_read(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(EVENTS), encoding="utf-8")
    lines = tmp_path / "lines.json"
    lines.write_text("\n".join(json.dumps(event) for event in EVENTS), encoding="utf-8")
    single = tmp_path / "one.json"
    single.write_text(json.dumps(EVENTS[0], indent=2), encoding="utf-8")
    assert len(read_events(listed)) == len(read_events(lines)) == 4
    (event,) = read_events(single)
    assert event["Image"] == "C:\\Tools\\Packer.exe" and event["EventID"] == 1 and event["Event.System.EventID"] == 1


@pytest.mark.skipif(not evaluator_available(), reason="needs pysigma-backend-sqlite")
def test_the_rule_is_evaluated_against_the_json_sample(repo):
    _, rule = document(repo)
    sample = repo / "regression_data" / "rules" / "archive_share" / "0a1b2c3d.json"
    result = evaluate(rule.source.raw_text, sample, 2)
    # case-insensitive endswith, a UNC path, the SYSTEM filter and the local path left out
    assert (result.matched, result.events, result.expected) == (2, 4, 2)
    stricter = rule.source.raw_text.replace("User: SYSTEM", "User: bob")
    assert evaluate(stricter, sample, 2).matched == 2  # bob is filtered, SYSTEM now matches
    assert evaluate(rule.source.raw_text.replace("User: SYSTEM", "User: system"), sample, 2).matched == 2  # equality ignores case
    unknown_field = rule.source.raw_text.replace("User: SYSTEM", "ParentUser: SYSTEM")
    assert evaluate(unknown_field, sample, 2).matched == 3  # no event has the field: the filter never applies


def test_site_shows_the_evidence_without_git_with_one_notice(repo, tmp_path, caplog):
    import logging
    import os

    from catalog.cli import main

    (repo / "docs").mkdir()
    (repo / "docs" / "index.md").write_text("# Rules\n", encoding="utf-8")
    config = repo / "mkdocs.yml"
    config.write_text("site_name: Test\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules:\n"
                      "        - path: rules\n          source_url: https://github.com/o/r/blob/main/rules\n", encoding="utf-8")
    site = tmp_path / "site"
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        with caplog.at_level(logging.INFO, logger="mkdocs.plugins.sigma_catalog"):
            assert main(["build", "--config", str(config), "--site-dir", str(site)]) == 0
    finally:
        os.chdir(cwd)
    page = (site / "rules" / "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" / "index.html").read_text(encoding="utf-8")
    assert 'id="test-evidence"' in page and 'id="history"' not in page
    assert 'href="https://github.com/o/r/blob/main/regression_data/rules/archive_share/0a1b2c3d.evtx"' in page
    assert "T1560.001" in page and "Compress a folder to a share" in page
    if evaluator_available():
        assert "matches 2 of expected 2" in page
    notices = [record.getMessage() for record in caplog.records if "no rule history" in record.getMessage()]
    assert len(notices) == 1 and "not inside a git repository" in notices[0]
    matrix = (site / "coverage" / "index.html").read_text(encoding="utf-8")
    assert 'title="T1560: 1 rules, 1 with regression tests"' in matrix


@pytest.mark.skipif(not evaluator_available(), reason="needs pysigma-backend-sqlite")
def test_evaluations_are_remembered_and_bounded(repo, tmp_path, monkeypatch):
    from catalog import evidence

    _, rule = document(repo)
    sample = repo / "regression_data" / "rules" / "archive_share" / "0a1b2c3d.json"
    first = Evaluations(tmp_path / "cache", budget=1)
    assert first.result(rule.source.raw_text, sample, 2).matched == 2
    assert first.result(rule.source.raw_text + "\n", sample, 2) is None  # past the budget: not evaluated
    first.save()
    monkeypatch.setattr(evidence, "evaluate", lambda *arguments: pytest.fail("evaluated again"))
    again = Evaluations(tmp_path / "cache", budget=0)
    assert again.result(rule.source.raw_text, sample, 2).matched == 2  # from the cache
    sample.write_text(json.dumps(EVENTS[:1]), encoding="utf-8")
    assert again.result(rule.source.raw_text, sample, 2) is None  # another sample: not the cached result
