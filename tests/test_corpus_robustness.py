"""The whole SigmaHQ corpus goes through the engine: no crash, every document and file accounted for."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from catalog.jsonexport import catalog_to_json
from catalog.pipeline import build_catalog
from catalog.problems import Severity
from catalog.yamlsafe import YamlError, YamlMap, load_documents

from conftest import CORPUS

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.is_dir(), reason="needs ../shared/corpora/sigmahq"),
]

PROBLEM = re.compile(r"^[^\n]+?(:\d+:\d+)?: (error|warning): [^\n]+ \[[a-z0-9-]+\]$")
#: What may go wrong in the SigmaHQ corpus: conditions that are not Sigma (old `unsupported/`
#: rules write pseudo-code there), and ids used twice within `action: global` collections.
EXPECTED_ERRORS = {"condition", "duplicate-id"}


@pytest.fixture(scope="module")
def catalog():
    return build_catalog([CORPUS])


@pytest.fixture(scope="module")
def data(catalog):
    return json.loads(json.dumps(catalog_to_json(catalog), ensure_ascii=False))  # as written to disk


def corpus_files() -> list[Path]:
    return sorted(path for path in CORPUS.rglob("*") if path.suffix in (".yml", ".yaml") and path.is_file())


def test_every_rule_file_is_read(catalog):
    assert sorted(rule_file.path for rule_file in catalog.files) == corpus_files()
    assert len(catalog.files) > 4000


def test_no_unexpected_errors(catalog):
    errors = Counter(problem.code for problem in catalog.errors)
    assert set(errors) <= EXPECTED_ERRORS, errors
    assert sum(errors.values()) < 20
    for problem in catalog.problems:
        assert PROBLEM.match(str(problem)), str(problem)


def test_every_yaml_document_is_a_document_or_a_listed_error(catalog):
    documents_by_file: dict[str, set[int]] = {}
    for entry in catalog.entries:
        documents_by_file.setdefault(entry.document.source.file_display, set()).add(entry.document.source.document)
    errors_by_file: dict[str, list] = {}
    for problem in catalog.errors:
        errors_by_file.setdefault(problem.path, []).append(problem)
    kinds = Counter(entry.document.kind for entry in catalog.entries)
    assert set(kinds) <= {"rule", "correlation", "filter"}
    unaccounted = []
    for rule_file in catalog.files:
        text = rule_file.path.read_text(encoding="utf-8-sig")
        try:
            yaml_documents = list(load_documents(text))
        except YamlError:
            if not errors_by_file.get(rule_file.display):
                unaccounted.append((rule_file.display, "YAML error not listed"))
            continue
        for index, yaml_document in enumerate(yaml_documents):
            data = yaml_document.data
            if data is None or (isinstance(data, YamlMap) and data.get("action") in ("global", "reset")):
                continue  # empty documents and collection templates are not documents themselves
            if index in documents_by_file.get(rule_file.display, ()):
                continue
            listed = [
                problem
                for problem in errors_by_file.get(rule_file.display, [])
                if yaml_document.line <= problem.line <= yaml_document.end_line or problem.line == 0
            ]
            if not listed:
                unaccounted.append((rule_file.display, index))
    assert unaccounted == []
    assert kinds["rule"] > 4000


def test_json_accounts_for_every_file(data):
    files = [item["path"] for item in data["files"]]
    assert sorted(files) == sorted(str(path) for path in corpus_files())
    sources = {rule["source"]["root"].rstrip("/") + "/" + rule["source"]["path"] for rule in data["rules"]}
    problem_paths = {problem["path"] for problem in data["problems"]}
    missing = [path for path in files if path not in sources and path not in problem_paths]
    assert missing == []
    for item in data["files"]:
        assert item["documents"] or item["problems"], item
    assert data["summary"]["files"] == len(files)
    assert sum(len(item["documents"]) for item in data["files"]) == len(data["rules"])


def test_analysis_of_every_rule(catalog):
    for entry in catalog.rules:
        analysis = entry.analysis
        assert analysis is not None
        assert analysis.stages and analysis.stages[0].number == 0
        conditions = entry.document.detection.conditions
        assert sum(1 for stage in analysis.stages if stage.number == 0) == len(conditions)
        for indicator in analysis.indicators:
            assert catalog.corpus.count(indicator.key) >= 1
    legacy = [entry for entry in catalog.rules if entry.analysis.aggregations]
    assert legacy  # the corpus still has legacy `| count()` rules: they load, marked
    warned = {problem.path for problem in catalog.problems if problem.code == "legacy-aggregation"}
    assert {entry.document.source.file_display for entry in legacy} <= warned


def test_corpus_counts_are_shared(catalog):
    shared = catalog.corpus.shared()
    assert shared and len(shared[0][1]) > 50  # a few indicators are everywhere (e.g. process names)
    assert all(len(slugs) == len(set(slugs)) for _, slugs in shared)  # a rule counts once per indicator
    assert all(problem.severity in (Severity.ERROR, Severity.WARNING) for problem in catalog.problems)
