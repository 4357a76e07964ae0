"""The ATT&CK pages: one per technique and tactic, the ATT&CK index, the coverage matrix.

Technique pages exist for every technique a rule maps to, every parent of one, and every
technique id a rule tags that the ATT&CK data does not know.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from catalog.site.addresses import tactic_path, technique_path
from catalog.site.model import Page, Site, SiteData, browse_page


@dataclass(slots=True)
class AttackUse:
    """Which documents map to which technique, under which tactic."""

    by_technique: dict[str, list[tuple[str, list[str]]]] = field(default_factory=lambda: defaultdict(list))  # id -> [(slug, tactic names)]
    per_tactic: dict[str, dict[str, set[str]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(set)))  # shortname -> id -> slugs
    techniques: dict[str, object] = field(default_factory=dict)
    unknown: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # unknown id -> slugs
    tactics_used: dict[str, object] = field(default_factory=dict)
    tested: set[str] = field(default_factory=set)  # slugs of rules with regression tests (history_pages)

    @classmethod
    def of(cls, data: SiteData, tested: set[str]) -> "AttackUse":
        use = cls(tested=tested)
        for entry in data.entries:
            mapping = entry.attack
            if mapping is None:
                continue
            seen: dict[str, list[str]] = {}
            for row in mapping.rows:
                use.tactics_used[row.tactic.shortname] = row.tactic
                for mapped in row.techniques:
                    technique = mapped.technique
                    use.techniques[technique.id] = technique
                    names = seen.setdefault(technique.id, [])
                    label = row.tactic.name + (" (derived)" if mapped.derived else "")
                    if label not in names:
                        names.append(label)
                    use.per_tactic[row.tactic.shortname][technique.id].add(entry.slug)
            for technique_id, names in seen.items():
                use.by_technique[technique_id].append((entry.slug, names))
            for technique_id in mapping.unknown_techniques:
                if entry.slug not in use.unknown[technique_id]:
                    use.unknown[technique_id].append(entry.slug)
        return use


@dataclass(slots=True)
class Matrix:
    """The ATT&CK data the pages are drawn against (the catalog's own tactics when there is none)."""

    release: str
    tactics: list
    techniques: list
    children: dict[str, list]
    by_id: dict[str, object]


def add_attack_pages(data: SiteData, site: Site) -> None:
    tested = set(data.records.evidence) if data.records is not None else set()
    # a document's ATT&CK mapping is made of its tags (and the ATT&CK data, the same for `reuse`)
    use = data.reuse("attack", tested, lambda entry: entry.document.tags, lambda: AttackUse.of(data, tested))
    kb = data.kb
    all_techniques = list(kb.all_techniques) if kb is not None else list(use.techniques.values())
    children: dict[str, list] = defaultdict(list)
    for technique in all_techniques:
        if technique.parent and not technique.revoked and not technique.deprecated:
            children[technique.parent].append(technique)
    matrix = Matrix(
        release=f"ATT&CK Enterprise v{kb.release}" if kb is not None else "ATT&CK",
        tactics=list(kb.tactics) if kb is not None else list(use.tactics_used.values()),
        techniques=all_techniques,
        children=children,
        by_id={t.id: t for t in all_techniques},
    )
    page_ids = set(use.by_technique) | {t.parent for t in use.techniques.values() if t.parent}
    site.pages.extend(technique_pages(data, use, matrix, page_ids))
    tactic_rows = tactic_pages(data, use, matrix, site)
    site.browse.append(browse_page("attack/", "ATT&CK", "attack.html", {
        "release": matrix.release,
        "tactics": tactic_rows,
        "unknown": [{"id": tid, "count": len(slugs), "path": technique_path(tid)} for tid, slugs in sorted(use.unknown.items())],
    }, nav_title="ATT&CK tactics"))
    columns, maximum = coverage_columns(use, matrix, page_ids)
    site.browse.append(browse_page("coverage/", "Coverage matrix", "coverage.html",
                                   {"release": matrix.release, "columns": columns, "maximum": maximum}, wide=True))
    site.home["tactics_covered"] = sum(1 for row in tactic_rows if row["rules"])
    site.home["tactics_total"] = len(matrix.tactics)
    site.home["techniques_covered"] = len(use.by_technique)
    site.home["parent_techniques_covered"] = sum(1 for column in columns for cell in column["cells"] if cell["count"])
    site.home["release"] = kb.release if kb is not None else None


def technique_pages(data: SiteData, use: AttackUse, matrix: Matrix, page_ids: set[str]) -> list[Page]:
    pages = []
    for tid in sorted(page_ids):
        technique = matrix.by_id.get(tid) or use.techniques.get(tid)
        if technique is None:
            continue
        subs = [
            {"id": sub.id, "name": sub.name, "count": len(use.by_technique.get(sub.id, ())),
             "path": technique_path(sub.id) if sub.id in page_ids else None}
            for sub in sorted(matrix.children.get(tid, ()), key=lambda t: t.id)
        ]
        parent = matrix.by_id.get(technique.parent) if technique.parent else None
        context = {
            "id": technique.id,
            "name": technique.name,
            "description": technique.description,
            "mitre_url": technique.url,
            "release": matrix.release,
            "tactics": [
                {"name": tactic.name, "path": tactic_path(tactic.shortname)}
                for tactic in matrix.tactics
                if tactic.shortname in technique.tactics
            ],
            "parent": {"id": parent.id, "name": parent.name, "path": technique_path(parent.id)} if parent else None,
            "subtechniques": subs,
            "list": data.lists.context((slug for slug, _ in use.by_technique.get(tid, ())), tested=use.tested),
            "deprecated": technique.deprecated,
            "unknown": False,
        }
        pages.append(Page(technique_path(tid), f"{technique.id} {technique.name}", "technique.html", context,
                          f"Sigma rules mapped to ATT&CK technique {technique.id} {technique.name}"))
    for tid, slugs in sorted(use.unknown.items()):
        if tid in page_ids:
            continue
        context = {
            "id": tid, "name": "", "description": "", "mitre_url": None, "release": matrix.release, "tactics": [], "parent": None,
            "subtechniques": [], "list": data.lists.context(slugs),
            "deprecated": False, "unknown": True,
        }
        pages.append(Page(technique_path(tid), tid, "technique.html", context, f"Sigma rules tagged with {tid}"))
    return pages


def tactic_pages(data: SiteData, use: AttackUse, matrix: Matrix, site: Site) -> list[dict]:
    """One page per tactic; returns the rows of the ATT&CK index."""
    tactic_rows = []
    for tactic in matrix.tactics:
        used = use.per_tactic.get(tactic.shortname, {})
        rule_slugs = set().union(*used.values()) if used else set()
        items = []
        for tid in sorted(used, key=lambda i: (matrix.by_id[i].name if i in matrix.by_id else i, i)):
            technique = matrix.by_id.get(tid) or use.techniques[tid]
            items.append({"id": tid, "name": technique.name, "count": len(used[tid]), "path": technique_path(tid)})
        path = tactic_path(tactic.shortname)
        tactic_rows.append({"id": tactic.id, "name": tactic.name, "path": path, "techniques": len(items), "rules": len(rule_slugs)})
        site.pages.append(Page(path, f"{tactic.name} ({tactic.id})", "tactic.html", {
            "id": tactic.id, "name": tactic.name, "mitre_url": tactic.url, "release": matrix.release, "techniques": items,
            "rules": len(rule_slugs), "list": data.lists.context(e.slug for e in data.entries if e.slug in rule_slugs),
        }, f"ATT&CK tactic {tactic.name}: techniques and Sigma rules"))
    return tactic_rows


def coverage_columns(use: AttackUse, matrix: Matrix, page_ids: set[str]) -> tuple[list[dict], int]:
    """The coverage matrix: every current technique of each tactic, shaded by rule count."""
    columns = []
    maximum = 1
    for tactic in matrix.tactics:
        used = use.per_tactic.get(tactic.shortname, {})
        cells = []
        for technique in matrix.techniques:
            if technique.parent or technique.revoked or technique.deprecated or tactic.shortname not in technique.tactics:
                continue
            slugs: set[str] = set(used.get(technique.id, ()))
            for sub in matrix.children.get(technique.id, ()):
                slugs |= used.get(sub.id, set())
            count = len(slugs)
            maximum = max(maximum, count)
            cells.append({"id": technique.id, "name": technique.name, "count": count, "tested": len(slugs & use.tested),
                          "path": technique_path(technique.id) if count and technique.id in page_ids else None})
        cells.sort(key=lambda cell: cell["name"].casefold())
        columns.append({"name": tactic.name, "id": tactic.id, "path": tactic_path(tactic.shortname), "cells": cells,
                        "covered": sum(1 for cell in cells if cell["count"])})
    for column in columns:
        for cell in column["cells"]:
            cell["shade"] = 0 if not cell["count"] else 1 + min(4, int(4 * math.log1p(cell["count"]) / math.log1p(maximum)))
    return columns, maximum
