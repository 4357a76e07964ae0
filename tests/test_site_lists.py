"""The browse pages' data: rule lists (rows, long lists through rules.json), authors grouped by
normalised name, technique pages with the ATT&CK description, the search index. Site model only
(no MkDocs build), on small rules written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog.attack.description import MAX_DESCRIPTION, short_description
from catalog.attack.knowledge import load_knowledge
from catalog.pipeline import build_catalog
from catalog.site import lists
from catalog.site.model import Folder, author_key, author_path, split_authors
from catalog.site.output import LoadCache
from catalog.site.pages import SiteBuilder
from catalog.site.search import search_index


def rule(number: int, *, author: str = "Jane Doe", level: str = "high", status: str = "test", tags: str = "",
         product: str = "windows", category: str = "process_creation", date: str = "2024-01-02") -> str:
    return (
        f"title: Suspicious tool run number {number}\n"
        f"id: 6a0c3c1e-0000-4000-8000-{number:012d}\n"
        f"status: {status}\nlevel: {level}\nauthor: {author}\ndate: {date}\n"
        f"description: Finds tool number {number} started by a script.\n"
        + (f"tags:\n{tags}" if tags else "")
        + f"logsource:\n    product: {product}\n    category: {category}\n"
        "detection:\n    selection:\n        Image|endswith: '\\tool.exe'\n"
        f"        CommandLine|contains: 'run-{number}'\n    condition: selection\n"
    )


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


def make_site(tmp_path: Path, rules: dict[str, str], kb=None):
    for name, text in rules.items():
        path = tmp_path / "rules" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    root = str(tmp_path / "rules")
    catalog = build_catalog([root], kb)
    builder = SiteBuilder(catalog, [Folder(root, "rules")], kb)
    return builder, builder.build({})


def page(site, path: str):
    return next(p for p in site.pages + site.browse if p.path == path)


def test_list_rows_carry_what_the_filters_need(tmp_path, kb):
    builder, site = make_site(tmp_path, {
        "proc/a.yml": rule(1, tags="    - attack.execution\n    - attack.t1059.001\n", date="2023-05-06"),
        "net/b.yml": rule(2, level="low", status="deprecated", product="linux", category="network_connection"),
    }, kb)
    rows = page(site, "rules/")
    assert rows.context["list"]["total"] == 2 and rows.context["list"]["positions"] is None
    first = next(row for row in rows.context["list"]["rules"] if row["title"].endswith(" 1"))
    assert (first["logsource"], first["folder"], first["tactics"], first["date"], first["level"]) == (
        "windows / process_creation", "rules/proc", ["Execution"], "2023-05-06", "high")
    data = json.loads(builder.data.lists.json(True))
    slug, title, kind, level, status, logsource, folder, tactics, date = next(r for r in data["rules"] if r[1].endswith(" 2"))
    assert (title, kind, level, status, logsource, data["folders"][folder], tactics) == (
        "Suspicious tool run number 2", "rule", "low", "deprecated", "linux / network_connection", "rules/net", [])


def test_a_long_list_holds_its_first_rows_and_the_positions_of_all(tmp_path, monkeypatch):
    monkeypatch.setattr(lists, "HTML_ROWS", 3)
    builder, site = make_site(tmp_path, {f"r{n}.yml": rule(n) for n in range(5)})
    listing = page(site, "levels/high/").context["list"]
    assert len(listing["rules"]) == 3 and listing["total"] == 5
    data = json.loads(builder.data.lists.json(True))
    assert sorted(data["rules"][i][1] for i in listing["positions"]) == sorted(f"Suspicious tool run number {n}" for n in range(5))


def test_authors_are_grouped_by_normalised_name_and_their_spellings_shown(tmp_path):
    _, site = make_site(tmp_path, {
        "a.yml": rule(1, author="Jane Doe (Example Org)"),
        "b.yml": rule(2, author="jane  doe, Max Mustermann"),
        "c.yml": rule(3, author="Jane Doe and Max Mustermann"),
    })
    authors = {item["name"]: item["count"] for item in page(site, "authors/").context["items"]}
    assert authors in ({"Jane Doe (Example Org)": 3, "Max Mustermann": 2}, {"jane doe": 3, "Max Mustermann": 2},
                       {"Jane Doe": 3, "Max Mustermann": 2})
    jane = page(site, author_path("JANE DOE"))
    assert jane.context["list"]["total"] == 3
    assert "Also written as" in jane.context["intro"] and "jane doe" in jane.context["intro"].lower()


#: Edits of rule 2 under `mkdocs serve`, each changing what other pages show of it.
SERVE_EDITS = {
    "title": ("Suspicious tool run number 2", "Renamed tool"),
    "author": ("author: Jane Doe", "author: Max Mustermann"),
    "level": ("level: high", "level: low"),
    "tags": ("logsource:", "tags:\n    - attack.execution\n    - attack.t1059.001\nlogsource:"),
    "indicator": ("tool.exe", "other.exe"),
    "field": ("CommandLine|contains", "ParentCommandLine|contains"),
    "log source": ("category: process_creation", "category: image_load"),
}


@pytest.mark.parametrize("edit", SERVE_EDITS)
def test_a_serve_update_reuses_what_an_edit_leaves_and_gives_what_a_clean_build_gives(tmp_path, kb, monkeypatch, edit):
    monkeypatch.setattr(lists, "HTML_ROWS", 2)  # long lists: their first rows and the positions of all
    root = tmp_path / "rules"
    root.mkdir()
    for number in range(6):
        (root / f"r{number}.yml").write_text(rule(number, status="experimental" if number == 5 else "test",
                                                  tags="    - attack.t1033\n" if number > 3 else ""), encoding="utf-8")
    folders = [Folder(str(root), "rules")]

    def build(loads: LoadCache, memo: dict, previous=None):
        builder = SiteBuilder(build_catalog([str(root)], kb, load=loads.load), folders, kb, memo=memo, previous=previous)
        return builder, builder.build({})

    def shape(site) -> tuple:
        return {p.path: (p.template, p.title, p.nav_title, p.wide, p.fingerprint()) for p in site.pages + site.browse}, site.home

    loads, memo = LoadCache(), {}
    first, first_site = build(loads, memo)
    old, new = SERVE_EDITS[edit]
    edited = root / "r2.yml"
    text = edited.read_text(encoding="utf-8")
    assert old in text
    edited.write_text(text.replace(old, new), encoding="utf-8")
    _, served = build(loads, memo, previous=first.data)
    _, clean = build(LoadCache(), {})
    assert shape(served) == shape(clean)
    assert shape(served) != shape(first_site)
    # a page listing rules other than the edited one is the last build's, not made again
    assert page(served, "statuses/experimental/") is page(first_site, "statuses/experimental/")


def test_author_names_split_and_normalise():
    assert split_authors("A (Org, Team), B; C & D and E") == ("A (Org, Team)", "B", "C", "D", "E")
    assert split_authors("  Jane   Doe ") == ("Jane Doe",)
    assert author_key("Jane Doe (Org)") == author_key("jane doe") == "jane doe"
    assert author_key("(only an org)") == "(only an org)"


def test_technique_page_has_the_attack_description_subtechniques_and_rule_columns(tmp_path, kb):
    _, site = make_site(tmp_path, {"a.yml": rule(1, tags="    - attack.execution\n    - attack.t1059\n")}, kb)
    technique = page(site, "techniques/t1059/")
    assert technique.context["description"].startswith("Adversaries may abuse command and script interpreters")
    assert "(Citation" not in technique.context["description"]
    assert any(sub["id"] == "T1059.001" for sub in technique.context["subtechniques"])
    assert technique.context["list"]["rules"][0]["logsource"] == "windows / process_creation"
    assert technique.context["list"]["rules"][0]["level"] == "high"


def test_short_description_keeps_the_first_paragraph_as_plain_text():
    text = ("Adversaries may use [PowerShell](https://attack.mitre.org/techniques/T1059/001) and <code>cmd</code>."
            "(Citation: Some Report 2020) More.\n\nSecond paragraph.")
    assert short_description(text) == "Adversaries may use PowerShell and cmd. More."
    long = "Word " * 400
    assert len(short_description(long)) <= MAX_DESCRIPTION
    assert short_description(None) == ""


def test_search_index_has_names_for_authors_log_sources_tactics_and_descriptions(tmp_path, kb):
    _, _site = make_site(tmp_path, {"a.yml": rule(1, author="Jane Doe", tags="    - attack.execution\n    - attack.t1059.001\n    - cve.2024-1234\n")}, kb)
    catalog = build_catalog([str(tmp_path / "rules")], kb)
    data = json.loads(search_index(catalog))
    assert data["v"] == 2
    row = data["rules"][0]
    names = data["names"]
    assert names[row[8]] == "windows / process_creation"
    assert [names[i] for i in row[9]] == ["Execution"]
    words = {names[i] for i in row[10]}
    assert {"Jane Doe", "PowerShell", "cve.2024-1234"} <= words
    assert row[7] == "test" and row[11] == "Finds tool number 1 started by a script."
