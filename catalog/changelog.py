"""`catalog changelog A..B`: the rule changes between two git revisions, for release notes.

Both sides are exported from git (`diff.catalog_at`) and compared by `diff.diff_catalogs`: the
same matching and the same analysis diff as the Changes page. A rule whose status becomes
`deprecated` is listed as deprecated. The JSON form is keyed by rule id (docs/changelog.md).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from catalog.change_summary import md_code, md_text
from catalog.changes import ChangeError, RuleChange
from catalog.diff import catalog_at, diff_catalogs, inside_repository
from catalog.git import GitError, repository_root, resolve_revision

#: The sections, in order; "deprecated" is a modification that sets status: deprecated.
SECTIONS = ("added", "modified", "renamed", "deprecated", "removed")
SCHEMA_VERSION = 1


def compute_changelog(roots: Sequence[str], revision_range: str, attack=None) -> tuple[str, str, list[RuleChange]]:
    """(from commit, to commit, the changes) for `A..B` (B defaults to HEAD); ChangeError when git cannot answer."""
    start, _, end = revision_range.partition("..")
    if not start or end.startswith("."):
        raise ChangeError(f"'{revision_range}' is not a range A..B")
    try:
        repo = repository_root(roots[0])
        old, _ = resolve_revision(repo, start, merge_base=False)
        new, _ = resolve_revision(repo, end or "HEAD", merge_base=False)
    except GitError as error:
        raise ChangeError(str(error)) from None
    inside = inside_repository(repo, list(roots))
    with tempfile.TemporaryDirectory(prefix="sigma-catalog-old-") as old_folder, tempfile.TemporaryDirectory(prefix="sigma-catalog-new-") as new_folder:
        old_roots, old_catalog = catalog_at(repo, old, inside, Path(old_folder), attack)
        new_roots, new_catalog = catalog_at(repo, new, inside, Path(new_folder), attack)
        changes = diff_catalogs(old_catalog, new_catalog, base_root_names=dict(zip(old_roots, roots)),
                                head_root_names=dict(zip(new_roots, roots)))
    return old, new, changes


def section_of(change: RuleChange) -> str:
    if change.kind in ("modified", "renamed") and change.status_change and (change.status_change[1] or "").lower() == "deprecated":
        return "deprecated"
    return change.kind


def to_json(revision_range: str, old: str, new: str, changes: Iterable[RuleChange]) -> dict:
    rules: dict[str, dict] = {}
    without_id: list[dict] = []
    for change in changes:
        record = {**change.to_json(), "section": section_of(change)}
        if change.rule_id and change.rule_id not in rules:
            rules[change.rule_id] = record
        else:
            without_id.append(record)
    counts = {section: 0 for section in SECTIONS}
    for record in [*rules.values(), *without_id]:
        counts[record["section"]] += 1
    return {"schema": SCHEMA_VERSION, "range": revision_range, "from": old, "to": new, "counts": counts,
            "rules": rules, "without_id": without_id}


def to_markdown(revision_range: str, old: str, new: str, changes: list[RuleChange]) -> Iterable[str]:
    titles = {"added": "Added", "modified": "Modified", "renamed": "Renamed or moved", "deprecated": "Deprecated", "removed": "Removed"}
    yield f"# Rule changes `{revision_range.replace('`', '')}`"
    yield ""
    yield f"From `{old[:12]}` to `{new[:12]}`."
    for section in SECTIONS:
        listed = [change for change in changes if section_of(change) == section]
        if not listed:
            continue
        yield ""
        yield f"## {titles[section]} ({len(listed)})"
        yield ""
        for change in listed:
            where = change.new_path or change.old_path or ""
            detail = "" if section in ("added", "removed") else f": {md_text(change.summary())}"
            yield f"- **{md_text(change.title)}** ({md_code(where)}){detail}"


def _knowledge():
    """The shipped ATT&CK snapshot, for techniques gained and lost (none when it cannot be read)."""
    from catalog.attack import AttackDataError, load_knowledge

    try:
        return load_knowledge(None)
    except AttackDataError:
        return None


def register(commands) -> None:
    changelog = commands.add_parser("changelog", help="the rule changes between two git revisions (release notes)")
    changelog.add_argument("range", help="A..B (B defaults to HEAD)")
    changelog.add_argument("paths", nargs="*", help="rule folders (default: the plugin's folders in ./mkdocs.yml, else 'rules')")
    changelog.add_argument("--format", choices=("markdown", "json"), default="markdown")
    changelog.add_argument("--config", default="mkdocs.yml", help="mkdocs.yml to take the default rule folders from")
    changelog.set_defaults(handler=run_command)


def run_command(arguments) -> int:
    import json

    from catalog.check import CheckError, default_paths

    try:
        paths = arguments.paths or default_paths(arguments.config)
        old, new, changes = compute_changelog([os.fspath(p) for p in paths], arguments.range, _knowledge())
    except (ChangeError, CheckError) as error:
        print(f"catalog changelog: error: {error}", file=sys.stderr)
        return 2
    if arguments.format == "json":
        json.dump(to_json(arguments.range, old, new, changes), sys.stdout, indent=1, ensure_ascii=False)
        print()
    else:
        for line in to_markdown(arguments.range, old, new, changes):
            print(line)
    return 0
