"""Rule history from git (catalog.history, catalog.revisions), `catalog changelog`, the site's History section."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from catalog.changelog import compute_changelog, to_json, to_markdown
from catalog.git import log_commits, log_with_blobs
from catalog.history import FileHistory, HistoryUnavailable, RepositoryHistory, commit_url, load_history, parse_log
from catalog.pipeline import build_catalog
from catalog.problems import Code
from catalog.revisions import add_history_findings, compare_texts, describe_revisions
from conftest import git

RULE = """title: Beacon Tool Started
id: 6f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8
status: {status}
level: {level}
date: 2026-01-01
{modified}logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '{image}'
    condition: selection
"""


def rule(image="\\beacon.exe", level="high", status="test", modified="", description=""):
    text = RULE.format(image=image, level=level, status=status, modified=f"modified: {modified}\n" if modified else "")
    return text + (f"description: {description}\n" if description else "")


def other_rule(**fields) -> str:
    return rule(**fields).replace("6f1d2c3b", "7f1d2c3b").replace("Beacon", "Other")


def commit(repo: Path, message: str, date: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, date=date)


@pytest.fixture
def repo(tmp_path) -> Path:
    """created 2026-01-05 as old.yml, renamed 2026-02-01, detection changed 2026-03-01 without a modified bump."""
    repo = tmp_path / "repo"
    (repo / "rules").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "rules" / "old.yml").write_text(rule(), encoding="utf-8")
    (repo / "rules" / "other.yml").write_text(other_rule(), encoding="utf-8")
    commit(repo, "add the beacon rule", "2026-01-05T10:00:00Z")
    git(repo, "tag", "v1")
    git(repo, "mv", "rules/old.yml", "rules/beacon.yml")
    commit(repo, "rename the beacon rule", "2026-02-01T10:00:00Z")
    (repo / "rules" / "beacon.yml").write_text(rule(image="\\beacon64.exe"), encoding="utf-8")
    commit(repo, "catch the 64-bit beacon", "2026-03-01T10:00:00Z")
    return repo


def history_of(repo: Path, name: str = "beacon.yml") -> tuple[RepositoryHistory, FileHistory]:
    history = load_history([repo / "rules"], repo / ".cache")
    assert isinstance(history, RepositoryHistory), history
    return history, history.files[f"rules/{name}"]


def with_history(repo: Path, history: RepositoryHistory):
    catalog = build_catalog([repo / "rules"])
    add_history_findings(catalog, history)
    return catalog


def test_creation_is_followed_through_a_rename(repo):
    history, beacon = history_of(repo)
    assert [change.commit.subject for change in beacon.changes] == ["catch the 64-bit beacon", "rename the beacon rule", "add the beacon rule"]
    assert [change.status for change in beacon.changes] == ["M", "R", "A"]
    assert beacon.created.path == "rules/old.yml" and beacon.created.commit.date == "2026-01-05"
    assert beacon.changes[1].old_path == "rules/old.yml"
    assert beacon.last_changed.commit.date == "2026-03-01"
    assert not history.shallow
    assert "rules/old.yml" not in history.files  # the old name is the same file, not another one


def test_history_is_cached_by_head_and_extended_with_new_commits(repo):
    first, _ = history_of(repo)
    assert (repo / ".cache" / "history" / "log.bin").is_file()
    again, beacon = history_of(repo)
    assert again.files == first.files and beacon.created.status == "A"
    # new commits (a rename among them) are read alone and put before the cached history
    git(repo, "mv", "rules/beacon.yml", "rules/beacon_tool.yml")
    commit(repo, "rename again", "2026-03-02T10:00:00Z")
    (repo / "rules" / "beacon_tool.yml").write_text(rule(level="critical"), encoding="utf-8")
    commit(repo, "raise the level", "2026-03-03T10:00:00Z")
    extended, moved = history_of(repo, "beacon_tool.yml")
    assert [change.commit.subject for change in moved.changes][:3] == ["raise the level", "rename again", "catch the 64-bit beacon"]
    assert moved.created.path == "rules/old.yml"
    cold = load_history([repo / "rules"])  # no cache: the whole log
    assert cold.files == extended.files and cold.commits == extended.commits
    cache = repo / ".cache" / "history" / "log.bin"
    cache.write_bytes(cache.read_bytes()[:-10])  # a cut cache is read from git again
    assert history_of(repo, "beacon_tool.yml")[0].files == cold.files


def branch_and_merge(repo: Path, merge_args: tuple[str, ...] = ()) -> None:
    """A side branch that changes other.yml, a commit on main outside the rule folder, then the merge."""
    git(repo, "checkout", "-q", "-b", "side")
    (repo / "rules" / "other.yml").write_text(other_rule(level="low"), encoding="utf-8")
    commit(repo, "lower the other rule", "2026-03-02T10:00:00Z")
    git(repo, "checkout", "-q", "main")
    (repo / "README.md").write_text("not a rule\n", encoding="utf-8")
    commit(repo, "readme", "2026-03-03T10:00:00Z")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge side", *merge_args, "side", date="2026-03-04T10:00:00Z")


def logged(repo: Path, since: str = "") -> list[bytes]:
    """What `git log -- rules` shows, in log_with_blobs's form."""
    return log_commits(subprocess.run(
        ["git", "-c", "core.quotePath=false", "log", "-M", "--raw", "--no-abbrev", "-z", "--format=%x00%x1e%H%x1f%at%x1f%s",
         f"{since}..HEAD" if since else "HEAD", "--", "rules"], cwd=repo, check=True, capture_output=True).stdout)


def read_in_slices(repo: Path, since: str | None = None) -> list[bytes]:
    """log_with_blobs in one process; the same commits whatever the number of parallel slices."""
    one = log_with_blobs(repo, ["rules"], since, slices=1)
    assert all(log_with_blobs(repo, ["rules"], since, slices=count) == one for count in (2, 3, 7))
    return one


def test_parallel_slices_read_what_git_log_reads(repo):
    git(repo, "mv", "rules/beacon.yml", "rules/bé acon.yml")  # core.quotePath=false: the name as it is
    commit(repo, "rename with an accent", "2026-03-05T10:00:00Z")
    (repo / "rules" / "odd\x1ename.yml").write_text(other_rule().replace("7f1d", "9f1d"), encoding="utf-8")
    (repo / "README.md").write_text("not a rule\n", encoding="utf-8")
    commit(repo, "a name holding the commit mark", "2026-03-06T10:00:00Z")
    (repo / "README.md").write_text("still not a rule\n", encoding="utf-8")
    commit(repo, "readme", "2026-03-07T10:00:00Z")
    one = read_in_slices(repo)
    assert one == logged(repo)
    files, commits = parse_log(one)
    assert [c.subject for c in commits] == ["a name holding the commit mark", "rename with an accent", "catch the 64-bit beacon",
                                            "rename the beacon rule", "add the beacon rule"]  # not the readme
    assert [c.status for c in files["rules/bé acon.yml"].changes] == ["R", "M", "R", "A"]
    assert [c.status for c in files["rules/odd\x1ename.yml"].changes] == ["A"]
    since = git(repo, "rev-parse", "HEAD~3").strip()
    assert parse_log(read_in_slices(repo, since))[1] == commits[:2]


def test_merges_are_simplified_as_git_log_does(repo):
    """A merged branch's rule change is listed; one whose change the merge did not keep is not (as in `git log -- rules`)."""
    branch_and_merge(repo)
    git(repo, "checkout", "-q", "-b", "dropped")
    (repo / "rules" / "beacon.yml").write_text(rule(level="low"), encoding="utf-8")
    commit(repo, "lower the beacon rule", "2026-03-05T10:00:00Z")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-s", "ours", "-m", "merge nothing of it", "dropped", date="2026-03-06T10:00:00Z")
    one = read_in_slices(repo)
    assert one == logged(repo)
    history, other = history_of(repo, "other.yml")
    assert [c.commit.subject for c in other.changes] == ["lower the other rule", "add the beacon rule"]
    assert "lower the beacon rule" not in [c.subject for c in history.commits]
    assert "lower the beacon rule" in git(repo, "log", "--format=%s")  # though the commit is in HEAD's history
    since = git(repo, "rev-parse", "HEAD~1").strip()
    assert read_in_slices(repo, since) == logged(repo, since)


def test_a_modification_without_a_modified_bump_is_a_warning(repo):
    history, _ = history_of(repo)
    catalog = with_history(repo, history)
    found = [p for p in catalog.problems if p.code == Code.MODIFIED_NOT_BUMPED]
    assert len(found) == 1 and found[0].path.endswith("beacon.yml")
    assert found[0].line == 5  # the date: line (there is no modified:)
    assert "2026-03-01" in found[0].message and "after its date date 2026-01-01" in found[0].message
    # bumping modified in the same kind of change answers it
    (repo / "rules" / "beacon.yml").write_text(rule(image="\\beacon32.exe", modified="2026-04-01"), encoding="utf-8")
    commit(repo, "catch the 32-bit beacon", "2026-04-01T10:00:00Z")
    history, _ = history_of(repo)
    assert not [p for p in with_history(repo, history).problems if p.code == Code.MODIFIED_NOT_BUMPED]
    # without history (catalog check outside git) there is no such finding
    assert not [p for p in build_catalog([repo / "rules"]).problems if p.code == Code.MODIFIED_NOT_BUMPED]


def test_a_formatting_only_change_is_no_warning(repo):
    text = (repo / "rules" / "beacon.yml").read_text(encoding="utf-8")
    (repo / "rules" / "beacon.yml").write_text(rule(image="\\beacon64.exe", modified="2026-03-01"), encoding="utf-8")
    commit(repo, "bump", "2026-03-01T11:00:00Z")
    (repo / "rules" / "beacon.yml").write_text("# a comment\n" + rule(image="\\beacon64.exe", modified="2026-03-01"), encoding="utf-8")
    commit(repo, "comment only", "2026-05-01T10:00:00Z")
    assert text
    history, _ = history_of(repo)
    assert not [p for p in with_history(repo, history).problems if p.code == Code.MODIFIED_NOT_BUMPED]


def test_a_detection_change_is_flagged_as_such(repo):
    history, beacon = history_of(repo)
    revisions = describe_revisions(history, beacon.changes, repo / ".cache")
    latest = beacon.changes[0]
    assert revisions[(latest.old_blob, latest.new_blob)].detection
    assert "1 indicator added" in revisions[(latest.old_blob, latest.new_blob)].summary
    assert (beacon.changes[1].old_blob, beacon.changes[1].new_blob) not in revisions  # a pure rename changes no content
    level = compare_texts(rule(), rule(level="critical"))
    assert level.level == ("high", "critical") and not level.detection and level.meaningful
    wording = compare_texts(rule(), rule(description="Seen in the wild"))
    assert not wording.meaningful and not wording.modified_bumped
    assert compare_texts(rule(), rule(modified="2026-02-02")).modified_bumped


def test_history_diffs_compute_no_text_diff(monkeypatch):
    """A rule's history shows the summary alone: the Changes page's text diff is not worked out."""
    import catalog.diff

    monkeypatch.setattr(catalog.diff, "_text_diff", lambda *args: pytest.fail("text diff computed"))
    assert compare_texts(rule(), rule(level="critical")).summary == "level high → critical"


def test_a_shallow_clone_says_history_truncated(repo, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], check=True, capture_output=True)
    history = load_history([clone / "rules"])
    assert isinstance(history, RepositoryHistory) and history.shallow
    beacon = history.files["rules/beacon.yml"]
    assert beacon.created is None  # the creating commit is not in the clone
    assert len(beacon.changes) == 1
    # the cache is kept for this depth: a deeper fetch reads the longer history
    assert len(history_of(clone)[1].changes) == 1
    subprocess.run(["git", "fetch", "-q", "--deepen=1"], cwd=clone, check=True, capture_output=True)
    assert [change.status for change in history_of(clone)[1].changes] == ["M", "S"]


def test_no_git_or_a_folder_outside_a_repository_is_no_history(tmp_path, monkeypatch):
    (tmp_path / "rules").mkdir()
    outside = load_history([tmp_path / "rules"])
    assert isinstance(outside, HistoryUnavailable) and "not inside a git repository" in outside.reason
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    missing = load_history([tmp_path / "rules"])
    assert isinstance(missing, HistoryUnavailable) and "git is not installed" in missing.reason


def test_commit_urls_of_code_hosts():
    commit = "a" * 40
    assert commit_url("https://github.com/o/r/blob/main/rules", commit) == f"https://github.com/o/r/commit/{commit}"
    assert commit_url("https://gitlab.com/g/r/-/blob/main/rules", commit) == f"https://gitlab.com/g/r/-/commit/{commit}"
    assert commit_url("https://example.org/rules", commit) is None
    assert commit_url("javascript:alert(1)//blob/x", commit) is None


# --- catalog changelog ----------------------------------------------------------------------------


def test_changelog_of_a_known_range(repo):
    (repo / "rules" / "other.yml").write_text(other_rule(status="deprecated"), encoding="utf-8")
    (repo / "rules" / "new.yml").write_text(rule().replace("6f1d2c3b", "8f1d2c3b").replace("Beacon Tool", "New Tool"), encoding="utf-8")
    commit(repo, "deprecate other, add new", "2026-03-05T10:00:00Z")
    old, new, changes = compute_changelog([str(repo / "rules")], "v1..HEAD")
    data = to_json("v1..HEAD", old, new, changes)
    assert data["counts"] == {"added": 1, "modified": 0, "renamed": 1, "deprecated": 1, "removed": 0}
    beacon = data["rules"]["6f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8"]
    assert beacon["section"] == "renamed" and beacon["old_path"].endswith("rules/old.yml") and beacon["new_path"].endswith("rules/beacon.yml")
    assert [i["value"] for i in beacon["indicators_added"]] == ["\\beacon64.exe"]
    assert data["rules"]["7f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8"]["status_change"] == ["test", "deprecated"]
    assert data["rules"]["8f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8"]["section"] == "added"
    json.dumps(data)
    markdown = "\n".join(to_markdown("v1..HEAD", old, new, changes))
    assert "## Added (1)\n\n- **New Tool Started**" in markdown
    assert "## Renamed or moved (1)" in markdown and "## Deprecated (1)" in markdown and "## Removed" not in markdown


def test_changelog_command(repo, capsys):
    from catalog.cli import main

    assert main(["changelog", "v1..HEAD", str(repo / "rules"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["rules"]) == ["6f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8"]
    assert main(["changelog", "nothing..HEAD", str(repo / "rules")]) == 2
    assert "unknown git revision 'nothing'" in capsys.readouterr().err


# --- the site -------------------------------------------------------------------------------------


def build_site(repo: Path, site: Path) -> None:
    from catalog.cli import main

    (repo / "docs").mkdir(exist_ok=True)
    (repo / "docs" / "index.md").write_text("# Rules\n", encoding="utf-8")
    config = repo / "mkdocs.yml"
    config.write_text("site_name: Test\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules:\n"
                      "        - path: rules\n          source_url: https://github.com/o/r/blob/main/rules\n"
                      "      cache_dir: .cache/sigma-catalog\n", encoding="utf-8")
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        assert main(["build", "--config", str(config), "--site-dir", str(site)]) == 0
    finally:
        os.chdir(cwd)


def test_site_of_a_shallow_clone_says_history_truncated(repo, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], check=True, capture_output=True)
    build_site(clone, tmp_path / "site")
    page = (tmp_path / "site" / "rules" / "6f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8" / "index.html").read_text(encoding="utf-8")
    assert "Created before the clone&#39;s history" in page or "Created before the clone's history" in page
    assert "History truncated (shallow clone)." in page and "history truncated here" in page


def test_site_shows_history_and_recently_changed(repo, tmp_path):
    site = tmp_path / "site"
    build_site(repo, site)
    page = (site / "rules" / "6f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8" / "index.html").read_text(encoding="utf-8")
    assert 'id="history"' in page and "Created 2026-01-05, last changed 2026-03-01" in page
    assert "detection changed" in page and "renamed from rules/old.yml" in page
    assert "https://github.com/o/r/commit/" in page
    assert "git shows a change after the rule's modified date" in page and "modified-not-bumped" in page
    recent = (site / "recent" / "index.html").read_text(encoding="utf-8")
    assert "catch the 64-bit beacon" in recent and "Beacon Tool Started" in recent
