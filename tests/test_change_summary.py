"""`catalog changes`: the change summary of a pull request, on temporary git repositories."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from catalog.attack import load_knowledge
from catalog.change_summary import MIN_LIMIT, Block, Preview, SummaryError, fit, md_code, md_text, summary_json, summary_markdown
from catalog.cli import main
from catalog.diff import compute_changes
from conftest import git

ID_EDIT = "a1111111-1111-4111-8111-111111111111"
ID_GONE = "a2222222-2222-4222-8222-222222222222"
ID_NEW = "a3333333-3333-4333-8333-333333333333"
PREVIEW = "https://preview.example/pr-7/"


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


def rule(title: str, rule_id: str, values: list[str], *, level: str = "high", tags: list[str] = (), filters: list[str] = ()) -> str:
    lines = [f"title: {json.dumps(title)}", f"id: {rule_id}", "status: test", "logsource:", "  product: linux", "  category: process_creation"]
    if tags:
        lines += ["tags:"] + [f"  - {tag}" for tag in tags]
    lines += ["detection:", "  pick:", "    CommandLine|contains:"] + [f"      - {json.dumps(value)}" for value in values]
    condition = "pick"
    if filters:
        lines += ["  filter_main_tool:", "    Image|endswith:"] + [f"      - {json.dumps(value)}" for value in filters]
        condition = "pick and not filter_main_tool"
    return "\n".join(lines + [f"  condition: {condition}", f"level: {level}", ""])


def make_repo(tmp_path: Path, base: dict[str, str], head: dict[str, str | None]) -> Path:
    """A repository whose commit `base` has the files `base`; the work tree then has `head` (None: deleted)."""
    repo = tmp_path / "repo"
    (repo / "rules").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for name, text in base.items():
        (repo / "rules" / name).write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "tag", "base")
    for name, text in head.items():
        if text is None:
            (repo / "rules" / name).unlink()
        else:
            (repo / "rules" / name).write_text(text, encoding="utf-8")
    return repo


def changes_in(repo: Path, kb, monkeypatch):
    monkeypatch.chdir(repo)
    return compute_changes(["rules"], "base", kb)


@pytest.fixture()
def small(tmp_path, kb, monkeypatch):
    """One rule edited, one removed, one added (which nearly duplicates a kept one)."""
    repo = make_repo(
        tmp_path,
        {"edit.yml": rule("Shell history wiped", ID_EDIT, ["history -c", "unset HISTFILE"], tags=["attack.stealth", "attack.t1070.003"], filters=["/bin/zsh"]),
         "gone.yml": rule("Old rule", ID_GONE, ["old-tool"], level="low")},
        {"edit.yml": rule("Shell history wiped", ID_EDIT, ["history -c", "HISTSIZE=0"], level="critical",
                          tags=["attack.stealth", "attack.t1070.003", "attack.execution", "attack.t1059.004"], filters=["/bin/zsh", "/bin/fish"]),
         "gone.yml": None,
         "new.yml": rule("History cleared again", ID_NEW, ["history -c", "HISTSIZE=0"], level="medium")},
    )
    return changes_in(repo, kb, monkeypatch)


EXPECTED_SMALL = """\
### Sigma catalog: what this change does to the rules

Compared with `base` (commit `{commit}`, the merge base): **1** added, **1** modified, **0** renamed or moved, **1** removed; \
**0** new findings (0 errors, 0 warnings); **0** likely duplicates. Comment-only and formatting-only edits are not listed; \
an indicator's count is how many rules of the catalog, this change included, have it.

Preview: [the Changes page](<https://preview.example/pr-7/changes/>).

#### Added (1)

- **[History cleared again](<https://preview.example/pr-7/rules/a3333333-3333-4333-8333-333333333333/>)** `rules/new.yml`
  - level `medium` · status `test`
  - indicators added (2): `CommandLine` contains `history -c` (in 2 rules), `CommandLine` contains `HISTSIZE=0` (in 2 rules)

#### Modified (1)

- **[Shell history wiped](<https://preview.example/pr-7/rules/a1111111-1111-4111-8111-111111111111/>)** `rules/edit.yml`
  - level `high` → `critical` · also changed: tags
  - indicators added (1): `CommandLine` contains `HISTSIZE=0` (in 2 rules)
  - indicators removed (1): `CommandLine` contains `unset HISTFILE` (in 0 rules)
  - exclusions added (1): not `filter_main_tool` (main): `Image ends_with /bin/fish, /bin/zsh`
  - exclusions removed (1): not `filter_main_tool` (main): `Image ends_with /bin/zsh`
  - ATT&CK gained (1): T1059\\.004 Unix Shell

#### Removed (1)

- **Old rule** `rules/gone.yml`
  - level `low` · status `test`
  - indicators removed (1): `CommandLine` contains `old-tool` (in 0 rules)
"""


def test_markdown_of_a_small_change(small):
    text = summary_markdown(small, Preview.at(PREVIEW))
    assert text == EXPECTED_SMALL.format(commit=small.short_commit)


def test_likely_duplicates_and_new_findings_are_listed(tmp_path, kb, monkeypatch):
    values = ["alpha-one", "alpha-two", "alpha-three", "alpha-four"]
    repo = make_repo(tmp_path, {"kept.yml": rule("Kept rule", ID_EDIT, values)},
                     {"copy.yml": rule("Copied rule", ID_NEW, values).replace("  condition:", "  unused_search:\n    Image: x\n  condition:"),
                      "broken.yml": "title: [\n"})
    text = summary_markdown(changes_in(repo, kb, monkeypatch))
    assert ("⚠️ **likely duplicate**: shares 4 of its 4 indicators (100%) with Kept rule `rules/kept.yml`") in text
    assert "**2** new findings (1 error, 1 warning)" in text
    assert "#### New errors and warnings in files without a changed rule (1)\n\n- **error** `rules/broken.yml:2:1`" in text
    copied = text[text.index("Copied rule"):]
    assert "  - new errors and warnings (1):\n    - **warning** `line " in copied and "(`unused-identifier`)" in copied


def test_json_has_the_same_content_keyed_by_rule(small):
    data = json.loads(json.dumps(summary_json(small, Preview.at(PREVIEW))))
    assert set(data) == {"schema_version", "base_ref", "base_commit", "merge_base", "counts", "changes_page", "rules", "removed",
                         "other_findings"}
    assert data["schema_version"] == 1 and data["base_ref"] == "base" and len(data["base_commit"]) == 40
    assert data["counts"] == {"added": 1, "modified": 1, "renamed": 0, "removed": 1, "new_findings": 0, "new_errors": 0,
                              "new_warnings": 0, "likely_duplicates": 0}
    assert data["changes_page"] == PREVIEW + "changes/"
    assert list(data["rules"]) == [ID_NEW, ID_EDIT] and list(data["removed"]) == [ID_GONE]
    edited = data["rules"][ID_EDIT]
    assert edited["page"] == f"{PREVIEW}rules/{ID_EDIT}/" and data["removed"][ID_GONE]["page"] is None
    assert edited["kind"] == "modified" and edited["level_change"] == ["high", "critical"]
    assert edited["indicators_removed"] == [{"field": "CommandLine", "kind": "contains", "value": "unset HISTFILE", "rules": 0}]
    assert [item["id"] for item in edited["techniques_gained"]] == ["T1059.004"]
    assert edited["exclusions_added"][0] == {"identifiers": ["filter_main_tool"], "scope": "main", "combined": False,
                                             "text": "Image ends_with /bin/fish, /bin/zsh",
                                             "values": [["Image", "ends_with", "/bin/fish"], ["Image", "ends_with", "/bin/zsh"]]}
    for record in [*data["rules"].values(), *data["removed"].values()]:
        assert isinstance(record["new_findings"], list) and isinstance(record["summary"], str)
        assert record["likely_duplicate_of"] is None or isinstance(record["likely_duplicate_of"], dict)


def many_added(tmp_path, kb, monkeypatch, count: int = 60):
    head = {f"r{number:02}.yml": rule(f"Rule number {number:02}", f"b{number:07}-1111-4111-8111-111111111111", [f"value-{number}"])
            for number in range(count)}
    return changes_in(make_repo(tmp_path, {"keep.yml": rule("Kept", ID_EDIT, ["x"])}, head), kb, monkeypatch)


@pytest.mark.parametrize("limit", [MIN_LIMIT, 3000, 7000])
def test_past_the_limit_whole_rules_are_left_out(tmp_path, kb, monkeypatch, limit):
    changes = many_added(tmp_path, kb, monkeypatch)
    full = summary_markdown(changes)
    assert len(full.encode()) > 7000  # the limits below really shorten it
    text = summary_markdown(changes, limit=limit)
    assert len(text.encode("utf-8")) <= limit
    shown = text.count("\n- **Rule number")
    assert 0 <= shown < 60
    assert f"**… {60 - shown} more rules not shown here** (too long for this summary): see the Changes page of the preview build " \
           "(`catalog build --base` `base`; in CI, the site artifact of this run)." in text
    for number in range(shown):  # each rule shown is whole: its title, its path and its indicator line
        assert f"- **Rule number {number:02}** `rules/r{number:02}.yml`\n  - level `high` · status `test`\n  - indicators added (1): " \
               f"`CommandLine` contains `value-{number}` (in 1 rule)\n" in text


def test_the_limit_points_at_the_preview_and_a_big_limit_keeps_everything(tmp_path, kb, monkeypatch):
    changes = many_added(tmp_path, kb, monkeypatch)
    text = summary_markdown(changes, Preview.at(PREVIEW), limit=4000)
    assert len(text.encode()) <= 4000
    assert text.endswith("not shown here** (too long for this summary): see the [Changes page](<https://preview.example/pr-7/changes/>) "
                         "of the preview.\n")
    assert "not shown here" not in summary_markdown(changes, Preview.at(PREVIEW), limit=65000)
    run = "https://github.example/o/r/actions/runs/1"
    assert summary_markdown(changes, Preview.at(None, run), limit=4000).endswith(
        f"see the Changes page of the preview site, in the [artifacts of this run](<{run}>).\n")


def test_fit_never_cuts_a_block():
    blocks = [Block("a" * 100 + "\n", rules=1), Block("b" * 100 + "\n", rules=1), Block("c" * 100 + "\n", rules=1)]

    def more(left):
        return f"[{len(left)} more]\n"

    assert fit("H\n", blocks, more, 400) == "H\n" + "".join(block.text for block in blocks)
    assert fit("H\n", blocks, more, 200) == "H\n" + blocks[0].text + "[2 more]\n"
    assert fit("H\n", blocks, more, 100) == "H\n[3 more]\n"
    assert len(fit("H" * 50 + "\n", blocks, more, 40)) == 40  # a header over the limit is cut (the CLI refuses such limits)


HOSTILE = "Evil [click](https://evil.example) <img src=x onerror=alert(1)> @octocat #1 *bold* _it_ `code` $x$ www.evil.example\nline two"


def test_rule_text_is_escaped():
    escaped = md_text(HOSTILE)
    assert escaped == (
        "Evil \\[click\\]\\(https\\:\u200b//evil\\.example\\) \\<img src=x onerror=alert\\(1\\)\\> \\@\u200boctocat \\#\u200b1 "
        "\\*bold\\* \\_it\\_ \\`code\\` \\$x\\$ www\u200b\\.evil\\.example line two"
    )
    assert md_code("a `tick` and ``two``") == "``` a `tick` and ``two`` ```"
    assert md_code("`edge`") == "`` `edge` ``"
    assert md_code("\u202eevil\x00") == "`evil`"


def test_a_hostile_title_stays_text(tmp_path, kb, monkeypatch):
    repo = make_repo(tmp_path, {"keep.yml": rule("Kept", ID_EDIT, ["y"])}, {"evil.yml": rule(HOSTILE, ID_NEW, ["x"])})
    text = summary_markdown(changes_in(repo, kb, monkeypatch), Preview.at(PREVIEW))
    assert f"- **[{md_text(HOSTILE)}](<{PREVIEW}rules/{ID_NEW}/>)** `rules/evil.yml`\n" in text
    assert re.search(r"(?<!\\)[<\[*_`]i", text) is None and "@octocat" not in text and "](https://evil" not in text and "\nline two" not in text


def test_preview_url_must_be_http():
    for bad in ("javascript:alert(1)", "https://x.example/a b", "file:///etc/passwd", 'https://x.example/"'):
        with pytest.raises(SummaryError):
            Preview.at(bad)
        with pytest.raises(SummaryError):
            Preview.at(None, bad)
    assert Preview.at("https://x.example/site").page("changes/") == "https://x.example/site/changes/"
    assert Preview.at(None).page("changes/") is None


def test_the_command(tmp_path, kb, monkeypatch, capfd):
    repo = make_repo(tmp_path, {"gone.yml": rule("Old rule", ID_GONE, ["old"])}, {"gone.yml": None})
    monkeypatch.chdir(repo)
    assert main(["changes", "--base", "base", "--limit", "5000", "--preview-url", PREVIEW]) == 0
    out = capfd.readouterr().out
    assert "**1** removed" in out and "- **Old rule** `rules/gone.yml`" in out
    assert main(["changes", "--base", "base", "--format", "json"]) == 0
    assert list(json.loads(capfd.readouterr().out)["removed"]) == [ID_GONE]
    assert main(["changes", "--base", "no-such-ref"]) == 2
    assert "catalog changes: error:" in capfd.readouterr().err
    assert main(["changes", "--base", "base", "--preview-url", "javascript:alert(1)"]) == 2
    with pytest.raises(SystemExit):
        main(["changes", "--base", "base", "--limit", "10"])
