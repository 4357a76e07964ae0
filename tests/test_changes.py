"""`catalog.changes`: the change set of a working tree against a base git revision."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from catalog.attack import load_knowledge
from conftest import git

from catalog.changes import ChangeError, ChangeSet, format_text
from catalog.diff import compute_changes
from catalog.git import resolve_revision


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


def rule(title: str, rule_id: str, values: list[str], *, level: str = "high", status: str = "test", tags: list[str] = (),
         filters: list[str] = (), comment: str = "") -> str:
    lines = [f"title: {title}", f"id: {rule_id}", f"status: {status}", "description: test rule"]
    if comment:
        lines.insert(0, f"# {comment}")
    if tags:
        lines.append("tags:")
        lines.extend(f"  - {tag}" for tag in tags)
    lines += ["logsource:", "  category: process_creation", "  product: windows", "detection:", "  selection:", "    CommandLine|contains:"]
    lines.extend(f"      - '{value}'" for value in values)
    condition = "selection"
    if filters:
        lines += ["  filter_main_known:", "    Image|endswith:"]
        lines.extend(f"      - '{value}'" for value in filters)
        condition = "selection and not filter_main_known"
    lines += [f"  condition: {condition}", f"level: {level}", ""]
    return "\n".join(lines)


ID_EDIT = "11111111-1111-4111-8111-111111111111"
ID_RENAME = "22222222-2222-4222-8222-222222222222"
ID_DELETE = "33333333-3333-4333-8333-333333333333"
ID_SAME = "44444444-4444-4444-8444-444444444444"
ID_ADD = "55555555-5555-4555-8555-555555555555"
ID_DUP = "66666666-6666-4666-8666-666666666666"
ID_COMMENT = "77777777-7777-4777-8777-777777777777"
ID_MOVE_EDIT = "88888888-8888-4888-8888-888888888888"


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A repository whose base commit has six rules; the work tree then changes them."""
    repo = tmp_path / "repo"
    rules = repo / "rules"
    (rules / "windows").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    files = {
        "windows/edit.yml": rule("Edited rule", ID_EDIT, ["alpha", "beta"], tags=["attack.execution", "attack.t1059"], filters=["\\a.exe"]),
        "windows/old_name.yml": rule("Renamed rule", ID_RENAME, ["gamma"]),
        "windows/delete.yml": rule("Deleted rule", ID_DELETE, ["delta", "epsilon"], tags=["attack.t1047"]),
        "windows/same.yml": rule("Same rule", ID_SAME, ["one", "two", "three", "four"]),
        "windows/comment.yml": rule("Comment only", ID_COMMENT, ["zeta"]),
        "windows/move_edit.yml": rule("Moved and edited", ID_MOVE_EDIT, ["eta"], level="low"),
    }
    for name, text in files.items():
        (rules / name).write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "tag", "base")

    # the change: edit, rename, delete, add, add a near-duplicate, comment-only edit, move + edit
    (rules / "windows/edit.yml").write_text(
        rule("Edited rule (v2)", ID_EDIT, ["alpha", "kappa"], level="critical", status="stable",
             tags=["attack.execution", "attack.t1059", "attack.t1047"], filters=["\\a.exe", "\\b.exe"]),
        encoding="utf-8",
    )
    git(repo, "mv", "rules/windows/old_name.yml", "rules/windows/new_name.yml")
    (rules / "windows/delete.yml").unlink()
    (rules / "linux").mkdir()
    (rules / "linux/added.yml").write_text(rule("Added rule", ID_ADD, ["lambda"], tags=["attack.t1059.004"]), encoding="utf-8")
    (rules / "linux/dup.yml").write_text(rule("Near duplicate", ID_DUP, ["one", "two", "three", "four"]), encoding="utf-8")
    (rules / "windows/comment.yml").write_text(rule("Comment only", ID_COMMENT, ["zeta"], comment="just a comment"), encoding="utf-8")
    (rules / "windows/move_edit.yml").rename(rules / "linux/moved.yml")
    (rules / "linux/moved.yml").write_text(rule("Moved and edited", ID_MOVE_EDIT, ["eta"], level="medium"), encoding="utf-8")
    return repo


def changes_of(repo: Path, kb, ref: str = "base", roots=("rules",)) -> ChangeSet:
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        return compute_changes(list(roots), ref, kb)
    finally:
        os.chdir(cwd)


def test_change_set_lists_each_kind(repo, kb):
    changes = changes_of(repo, kb)
    by_title = {change.title: change for change in changes.changes}
    assert sorted((change.kind, change.title) for change in changes.changes) == [
        ("added", "Added rule"),
        ("added", "Near duplicate"),
        ("modified", "Edited rule (v2)"),
        ("removed", "Deleted rule"),
        ("renamed", "Moved and edited"),
        ("renamed", "Renamed rule"),
    ]
    assert "Same rule" not in by_title and "Comment only" not in by_title  # unchanged, and comment-only
    assert changes.counts() == {"added": 2, "modified": 1, "renamed": 2, "removed": 1}
    assert len(changes.base_commit) == 40 and changes.merge_base

    edited = by_title["Edited rule (v2)"]
    assert edited.old_path == edited.new_path == "rules/windows/edit.yml"
    assert [str(item) for item in edited.indicators_added] == ["CommandLine contains kappa"]
    assert [str(item) for item in edited.indicators_removed] == ["CommandLine contains beta"]
    # corpus counts of the head catalog: kappa is this rule's alone, beta no rule has any more,
    # and the near duplicate shares every value with the rule it copies
    assert [item.rules for item in edited.indicators_added + edited.indicators_removed] == [1, 0]
    assert {item.value: item.rules for item in by_title["Near duplicate"].indicators_added} == {"one": 2, "two": 2, "three": 2, "four": 2}
    assert [item.text for item in edited.exclusions_added] == ["Image ends_with \\a.exe, \\b.exe"]
    assert [item.text for item in edited.exclusions_removed] == ["Image ends_with \\a.exe"]
    assert [item.id for item in edited.techniques_gained] == ["T1047"]
    assert edited.techniques_lost == ()
    assert edited.level_change == ("high", "critical")
    assert edited.status_change == ("test", "stable")
    assert edited.title_change == ("Edited rule", "Edited rule (v2)")
    assert "tags" in edited.metadata_changed and edited.logic_changed
    assert "kappa" not in edited.summary() and "1 indicator added" in edited.summary() and "level high → critical" in edited.summary()

    renamed = by_title["Renamed rule"]
    assert (renamed.old_path, renamed.new_path) == ("rules/windows/old_name.yml", "rules/windows/new_name.yml")
    assert not renamed.modified and not renamed.text_changed

    moved = by_title["Moved and edited"]
    assert (moved.old_path, moved.new_path) == ("rules/windows/move_edit.yml", "rules/linux/moved.yml")
    assert moved.modified and moved.level_change == ("low", "medium")

    deleted = by_title["Deleted rule"]
    assert deleted.old_path == "rules/windows/delete.yml" and deleted.new_path is None
    assert [item.id for item in deleted.techniques_lost] == ["T1047"]
    assert {item.value for item in deleted.indicators_removed} == {"delta", "epsilon"}

    added = by_title["Added rule"]
    assert added.new_path == "rules/linux/added.yml" and [item.id for item in added.techniques_gained] == ["T1059.004"]
    assert added.slug == ID_ADD and added.likely_duplicate_of is None

    duplicate = by_title["Near duplicate"].likely_duplicate_of
    assert duplicate is not None and duplicate.slug == ID_SAME and duplicate.title == "Same rule"
    assert (duplicate.shared, duplicate.total) == (4, 4) and duplicate.path == "rules/windows/same.yml"
    assert duplicate.score == 1.0  # the measure of the Similar rules sections (catalog.similarity)
    assert "Same rule" in by_title["Near duplicate"].summary()

    assert set(changes.by_slug()) == {ID_ADD, ID_DUP, ID_EDIT, ID_RENAME, ID_MOVE_EDIT}
    text = "\n".join(format_text(changes))
    assert "2 added, 1 modified, 2 renamed, 1 removed" in text
    data = changes.to_json()
    assert data["counts"]["removed"] == 1 and {c["kind"] for c in data["changes"]} == {"added", "modified", "renamed", "removed"}


def test_same_content_at_new_path_without_id_is_a_rename(tmp_path, kb):
    repo = tmp_path / "r"
    (repo / "rules").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    text = rule("No id", "x", ["a", "b"]).replace("id: x\n", "")
    (repo / "rules/a.yml").write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    (repo / "rules/a.yml").rename(repo / "rules/b.yml")
    changes = changes_of(repo, kb, "HEAD")
    assert [(c.kind, c.old_path, c.new_path) for c in changes.changes] == [("renamed", "rules/a.yml", "rules/b.yml")]


def test_new_rule_folder_and_absolute_roots(repo, kb):
    """A folder that does not exist in the base is all added; absolute roots work from anywhere."""
    changes = compute_changes([str(repo / "rules" / "linux")], "base", kb)
    assert {change.kind for change in changes.changes} == {"added"}
    assert all(change.new_path.startswith(str(repo)) for change in changes.changes)


def test_unknown_ref_is_a_clear_error(repo, kb):
    with pytest.raises(ChangeError, match="unknown git revision 'origin/nope'.*fetch-depth: 0"):
        changes_of(repo, kb, "origin/nope")
    with pytest.raises(ChangeError, match="not a git revision"):
        changes_of(repo, kb, "--output=/tmp/x")


def test_not_a_repository(tmp_path, kb):
    (tmp_path / "rules").mkdir()
    with pytest.raises(ChangeError, match="not inside a git repository"):
        compute_changes([str(tmp_path / "rules")], "HEAD", kb)


def test_merge_base_is_used_for_a_branch_behind_main(repo, kb):
    """A branch made before main moved on shows only its own changes, not main's newer ones."""
    git(repo, "checkout", "-q", "-b", "feature", "base")
    git(repo, "stash", "-q", "-u")  # the feature branch: no work-tree changes
    git(repo, "checkout", "-q", "main")
    git(repo, "stash", "pop", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main moves on")
    git(repo, "checkout", "-q", "feature")
    (repo / "rules/windows/extra.yml").write_text(rule("Feature rule", "99999999-9999-4999-8999-999999999999", ["nu"]), encoding="utf-8")
    changes = changes_of(repo, kb, "main")
    assert [(c.kind, c.title) for c in changes.changes] == [("added", "Feature rule")]
    assert changes.base_commit == git(repo, "rev-parse", "base").strip()
    commit, is_merge_base = resolve_revision(repo, "main", merge_base=False)
    assert commit == git(repo, "rev-parse", "main").strip() and not is_merge_base


def test_base_export_recreates_symlinks_so_both_sides_agree(tmp_path, kb):
    repo = tmp_path / "r"
    (repo / "rules").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "rules/a.yml").write_text(rule("Real", "aaaaaaaa-0000-4000-8000-000000000001", ["x"]), encoding="utf-8")
    os.symlink("a.yml", repo / "rules/link.yml")
    os.symlink("/etc/passwd", repo / "rules/passwd.yml")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    changes = changes_of(repo, kb, "HEAD")
    assert changes.changes == []  # both sides see the same rules and the same problems
    assert changes.new_problems == []  # the link out of the folder is refused on both sides alike
    assert changes.head_problems == changes.base_problems >= 1


# --- the built site -----------------------------------------------------------------------


def site_config(repo: Path) -> Path:
    (repo / "docs").mkdir(exist_ok=True)
    (repo / "docs" / "index.md").write_text("# Rules\n", encoding="utf-8")
    config = repo / "mkdocs.yml"
    config.write_text(
        "site_name: Test catalog\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules:\n        - rules\n"
        "      cache_dir: .cache/sigma-catalog\n",
        encoding="utf-8",
    )
    return config


def test_built_changes_page_and_banners(repo, tmp_path, capsys):
    from html.parser import HTMLParser

    from catalog.cli import main

    config = site_config(repo)
    site = tmp_path / "site"
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        assert main(["build", "--config", str(config), "--site-dir", str(site), "--base", "base"]) == 0
    finally:
        os.chdir(cwd)
    page = (site / "changes" / "index.html").read_text(encoding="utf-8")

    class Sections(HTMLParser):
        """h2 section -> the rule titles (h3) under it, and each h3's link."""

        def __init__(self):
            super().__init__()
            self.sections: dict[str, list[tuple[str, str | None]]] = {}
            self.current = None
            self.tag = None
            self.href = None

        def handle_starttag(self, tag, attrs):
            if tag in ("h2", "h3"):
                self.tag, self.href = tag, None
            elif tag == "a" and self.tag == "h3":
                self.href = dict(attrs).get("href")

        def handle_endtag(self, tag):
            if tag == self.tag:
                self.tag = None

        def handle_data(self, data):
            if self.tag == "h2" and data.strip():
                self.current = data.split(" (")[0].strip()
                self.sections[self.current] = []
            elif self.tag == "h3" and data.strip() and self.current:
                self.sections[self.current].append((data.strip(), self.href))

    parser = Sections()
    parser.feed(page[page.index('<h1 id="changes"'):])
    sections = parser.sections
    assert [title for title, _ in sections["Added"]] == ["Added rule", "Near duplicate"]
    assert [title for title, _ in sections["Modified"]] == ["Edited rule (v2)"]
    assert [title for title, _ in sections["Renamed or moved"]] == ["Moved and edited", "Renamed rule"]
    assert sections["Removed"] == [("Deleted rule", None)]  # no page to link to
    assert dict(sections["Added"])["Added rule"] == f"../rules/{ID_ADD}/"
    assert dict(sections["Modified"])["Edited rule (v2)"] == f"../rules/{ID_EDIT}/"
    for title, href in sections["Added"] + sections["Modified"] + sections["Renamed or moved"]:
        assert (site / "changes" / href / "index.html").resolve().is_file(), href
    assert "Compared with <code>base</code>" in page
    assert "<code>rules/windows/old_name.yml</code> → <code>rules/windows/new_name.yml</code>" in page
    assert "CommandLine</code> <em>contains</em> <code>kappa</code> <small class=\"sc-change-rules\">(in 1 rule of the catalog)</small>" in page
    assert "<code>beta</code> <small class=\"sc-change-rules\">(in 0 rules of the catalog)</small>" in page
    assert "Level: <code>high</code> → <code>critical</code>" in page
    assert "Likely duplicate" in page and f'href="../rules/{ID_SAME}/">Same rule</a>' in page
    assert "T1047" in page and "Comment only" not in page

    # a value added to a filter is that value added, not the filter removed and added again
    edit = page[page.index("Edited rule (v2)</a></h3>"):page.index("Renamed or moved")]
    assert '<li class="sc-change-plus"><span class="sc-change-sign">+</span> <code>Image</code> <em>ends_with</em> <code>\\b.exe</code></li>' in edit
    assert "\\a.exe</code>" not in edit.split("<h4>Exclusions</h4>")[1].split("<h4>")[0]
    # the rule file's unified diff, folded, + and - lines marked
    assert '<details class="sc-text-diff"><summary>' in edit
    assert '<span class="sc-diff-line sc-diff-plus">+level: critical</span>' in edit
    assert '<span class="sc-diff-line sc-diff-minus">-level: high</span>' in edit

    edited = (site / "rules" / ID_EDIT / "index.html").read_text(encoding="utf-8")
    assert "Changed in this pull request" in edited and "level high → critical" in edited
    assert '<a href="../../changes/">The Changes page</a> lists every change' in edited
    added = (site / "rules" / ID_ADD / "index.html").read_text(encoding="utf-8")
    assert "New in this pull request" in added
    same = (site / "rules" / ID_SAME / "index.html").read_text(encoding="utf-8")
    assert "in this pull request" not in same
    duplicate = (site / "rules" / ID_DUP / "index.html").read_text(encoding="utf-8")
    assert "Likely duplicate" in duplicate and "Same rule" in duplicate

    # the same build without --base has no Changes page and no banners
    plain = tmp_path / "plain"
    assert main(["build", "--config", str(config), "--site-dir", str(plain)]) == 0
    assert not (plain / "changes").exists()
    assert "in this pull request" not in (plain / "rules" / ID_EDIT / "index.html").read_text(encoding="utf-8")

    # an unknown base is a clear error, not a traceback
    capsys.readouterr()
    assert main(["build", "--config", str(config), "--site-dir", str(tmp_path / "x"), "--base", "origin/nope"]) == 1
    assert "unknown git revision 'origin/nope'" in capsys.readouterr().err
