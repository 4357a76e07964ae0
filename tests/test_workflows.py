"""The GitHub Actions workflows are linted (actionlint) and audited for security (zizmor)."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent  # the test extra installs both tools into this environment


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_there_are_workflows_to_check():
    assert sorted(path.name for path in WORKFLOWS.glob("*.yml")) == ["catalog-comment.yml", "catalog.yml"]


def test_actionlint_finds_nothing():
    result = _run(str(BIN / "actionlint"), "-no-color", *map(str, sorted(WORKFLOWS.glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_even_as_an_auditor():
    # --offline: no GitHub API look-ups; the auditor persona also reports low-confidence findings.
    result = _run(str(BIN / "zizmor"), "--offline", "--persona", "auditor", "--no-progress", str(WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_actionlint_does_find_a_broken_workflow(tmp_path):
    """The lint is real: an expression error in a copy of the workflow is reported."""
    broken = tmp_path / "broken.yml"
    broken.write_text((WORKFLOWS / "catalog.yml").read_text().replace("github.base_ref", "github.no_such_context("))
    result = _run(str(BIN / "actionlint"), "-no-color", str(broken))
    assert result.returncode != 0 and "broken.yml" in result.stdout


def test_zizmor_does_find_an_unpinned_action(tmp_path):
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    text = (WORKFLOWS / "catalog.yml").read_text()
    (workflows / "catalog.yml").write_text(text.replace("actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1", "actions/checkout@v7", 1))
    result = _run(str(BIN / "zizmor"), "--offline", "--no-progress", str(workflows))
    assert result.returncode != 0 and "unpinned-uses" in result.stdout


class _Parsed(Exception):
    """The command line was accepted (raised instead of running the command)."""


def _catalog_commands(text: str) -> list[str]:
    """`catalog check|build|changes ...` command lines of a script, up to a redirection or `||`."""
    return [match.strip() for line in text.splitlines() if not line.lstrip().startswith("#")
            for match in re.findall(r"\bcatalog ((?:check|build|changes)\b[^>|\n#]*)", line)]


def test_the_commands_in_the_workflows_and_docs_are_the_cli_s(monkeypatch):
    """Every `catalog` command the workflows and the GitLab example run is one the CLI accepts."""
    from catalog.cli import main

    review = (ROOT / "docs" / "review.md").read_text(encoding="utf-8")
    scripts = [path.read_text(encoding="utf-8") for path in sorted(WORKFLOWS.glob("*.yml"))]
    scripts += re.findall(r"```(?:yaml|sh)\n(.*?)```", review, flags=re.S)
    commands = [command for script in scripts for command in _catalog_commands(script)]
    assert len(commands) >= 10 and any(command.startswith("changes") for command in commands)

    original = argparse.ArgumentParser.parse_args

    def parse_only(self, args=None, namespace=None):
        original(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    for command in commands:
        with pytest.raises(_Parsed):
            main(shlex.split(command))
    with pytest.raises(SystemExit):  # the test can fail: an option the CLI does not have
        main(shlex.split("changes --base main --no-such-option"))


def test_the_gitlab_example_is_a_pipeline():
    import yaml

    review = (ROOT / "docs" / "review.md").read_text(encoding="utf-8")
    (example,) = [block for block in re.findall(r"```yaml\n(.*?)```", review, flags=re.S) if "stages:" in block]
    pipeline = yaml.safe_load(example)
    assert pipeline["stages"] == ["review", "publish"]
    assert pipeline["review"]["artifacts"]["reports"] == {"junit": "check.xml", "codequality": "gl-code-quality-report.json"}
    assert pipeline["review-note"]["needs"] == ["review"] and pipeline["review-note"]["before_script"] == []
    assert pipeline["pages"]["artifacts"]["paths"] == ["public"] and pipeline["pages"]["variables"]["SITE_URL"] == "$CI_PAGES_URL"
