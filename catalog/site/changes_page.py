"""The Changes page of a preview build (`catalog build --base REF`) and the banners of changed rules.

The data comes from `catalog.diff.compute_changes` (a `ChangeSet`); the page is
`templates/changes.html`.
"""

from __future__ import annotations

from typing import Callable, Sequence

from catalog.changes import KINDS, ChangeSet, ExclusionChange, IndicatorChange, RuleChange, TechniqueChange
from catalog.site.addresses import CHANGES, rule_path, technique_path
from catalog.site.model import Site, browse_page

#: At most this many items of one list (indicators added, ...) are shown per rule on the page.
PAGE_LIST_LIMIT = 200


_TITLES = {"added": "Added", "modified": "Modified", "renamed": "Renamed or moved", "removed": "Removed"}


def page_context(changes: ChangeSet, display_problem: Callable[[str], str] | None = None,
                 technique_link: Callable[[str], str | None] | None = None) -> dict:
    """The Changes page's template data: plain lists and dicts (`templates/changes.html`)."""
    display_problem = display_problem or (lambda path: path)
    sections = [
        {"kind": kind, "title": _TITLES[kind], "changes": [_change_row(change, technique_link) for change in changes.of_kind(kind)]}
        for kind in KINDS
    ]
    problems = [
        {"location": f"{display_problem(p.path)}:{p.line}" if p.line else display_problem(p.path), "severity": p.severity.value,
         "message": p.message, "code": p.code}
        for p in changes.new_problems[:PAGE_LIST_LIMIT * 5]
    ]
    return {
        "base_ref": changes.base_ref,
        "base_commit": changes.base_commit,
        "short_commit": changes.short_commit,
        "merge_base": changes.merge_base,
        "counts": changes.counts(),
        "total": len(changes.changes),
        "sections": sections,
        "duplicates": len(changes.duplicates),
        "new_problems": problems,
        "new_problems_more": max(0, len(changes.new_problems) - len(problems)),
    }


def _limited(items: Sequence, convert: Callable) -> dict:
    return {"items": [convert(item) for item in items[:PAGE_LIST_LIMIT]], "more": max(0, len(items) - PAGE_LIST_LIMIT)}


def _indicator(item: IndicatorChange) -> dict:
    return {"field": item.field, "kind": item.kind, "value": item.value, "rules": item.rules}


def _exclusion(item: ExclusionChange) -> dict:
    return {"label": (" and " if item.combined else ", ").join(item.identifiers), "scope": item.scope, "text": item.text}


def _exclusion_edits(added: Sequence[ExclusionChange], removed: Sequence[ExclusionChange]) -> tuple[list, list, list]:
    """(exclusions added, removed, changed): an exclusion of the same identifiers on both sides is one
    change listing the values it gained and lost, not a whole exclusion removed and another added."""
    def key(item: ExclusionChange) -> tuple:
        return item.identifiers, item.scope, item.combined

    old_by_key = {key(item): item for item in removed}
    changed, still_added = [], []
    for item in added:
        old = old_by_key.pop(key(item), None)
        if old is None or not (item.values and old.values):
            still_added.append(item)
            if old is not None:
                old_by_key[key(old)] = old
            continue
        gained = [value for value in item.values if value not in set(old.values)]
        lost = [value for value in old.values if value not in set(item.values)]
        changed.append(dict(_exclusion(item), values=[("+", *value) for value in gained] + [("−", *value) for value in lost]))
    return still_added, list(old_by_key.values()), changed


def _change_row(change: RuleChange, technique_link: Callable[[str], str | None] | None) -> dict:
    def technique(item: TechniqueChange) -> dict:
        return {"id": item.id, "name": item.name, "path": technique_link(item.id) if technique_link else None, "url": item.url}

    duplicate = change.likely_duplicate_of
    exclusions_added, exclusions_removed, exclusions_changed = _exclusion_edits(change.exclusions_added, change.exclusions_removed)
    return {
        "title": change.title,
        "path": rule_path(change.slug) if change.has_page else None,
        "document_kind": change.document_kind,
        "id": change.rule_id or "",
        "old_path": change.old_path or "",
        "new_path": change.new_path or "",
        "summary": change.summary(),
        "level": list(change.level_change) if change.level_change else None,
        "status": list(change.status_change) if change.status_change else None,
        "title_change": list(change.title_change) if change.title_change else None,
        "metadata": list(change.metadata_changed),
        "logic_changed": change.logic_changed,
        "indicators_added": _limited(change.indicators_added, _indicator),
        "indicators_removed": _limited(change.indicators_removed, _indicator),
        "exclusions_added": _limited(exclusions_added, _exclusion),
        "exclusions_removed": _limited(exclusions_removed, _exclusion),
        "exclusions_changed": exclusions_changed[:PAGE_LIST_LIMIT],
        "text_diff": [(line[:1] if line[:1] in "+-@" and not line.startswith(("+++", "---")) else "", line)
                      for line in change.text_diff.splitlines()],
        "techniques_gained": _limited(change.techniques_gained, technique),
        "techniques_lost": _limited(change.techniques_lost, technique),
        "same_id_as": list(change.same_id_as),
        "duplicate": None if duplicate is None else {
            "title": duplicate.title,
            "path": rule_path(duplicate.slug),
            "file": duplicate.path,
            "shared": duplicate.shared,
            "total": duplicate.total,
            "percent": round(100 * duplicate.ratio),
            "is_new": duplicate.is_new,
        },
    }


def banner(change: RuleChange) -> dict:
    """The banner a changed rule's page carries (`rule.html` shows banners as admonitions)."""
    see = {"path": CHANGES, "text": "The Changes page", "after": " lists every change of this pull request."}
    if change.kind == "added":
        text = "This rule is new in this pull request."
        if change.likely_duplicate_of is not None:
            text += f" Likely duplicate: it {change.likely_duplicate_of}."
        return {"kind": "change-new", "title": "New in this pull request", "text": text, "link": see}
    return {"kind": "change-modified", "title": "Changed in this pull request", "text": change.summary() + ".", "link": see}


def add_changes(site: Site, changes: ChangeSet, display_problem: Callable[[str], str] | None = None) -> None:
    """Put the Changes page into the site's browse pages (after Search) and a banner on each changed rule page."""
    known = {page.path for page in site.pages}

    def linked_technique(technique_id: str) -> str | None:
        path = technique_path(technique_id)
        return path if path in known else None

    context = page_context(changes, display_problem, linked_technique)
    position = next((index + 1 for index, page in enumerate(site.browse) if page.path == "find/"), 0)
    site.browse.insert(position, browse_page(CHANGES, "Changes", "changes.html", context, nav_title=f"Changes ({len(changes.changes)})"))
    by_path = {page.path: page for page in site.pages}
    for change in changes.changes:
        page = by_path.get(rule_path(change.slug)) if change.has_page else None
        if page is not None and isinstance(page.keep_data().get("banners"), list):
            page.context["banners"].insert(0, banner(change))
