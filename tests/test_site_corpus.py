"""The catalog site of the whole SigmaHQ corpus (../shared/corpora/sigmahq): built once, then checked.

Skipped where the corpus is absent. One `mkdocs build --strict` of ~4,000 rules, then: every rule
has a page, no internal link of the ~15,000 pages is broken, and every technique page lists exactly
the rules the analysis maps to that technique.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from linkcheck import anchors, broken_links

from conftest import CORPUS
FOLDERS = ["rules", "rules-emerging-threats", "rules-threat-hunting", "rules-placeholder", "rules-compliance",
           "deprecated", "unsupported"]

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the SigmaHQ corpus is not at {CORPUS}"),
]


@pytest.fixture(scope="module")
def corpus_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sigmahq")
    (root / "docs").mkdir()
    folders = "".join(f"        - {CORPUS / name}\n" for name in FOLDERS if (CORPUS / name).is_dir())
    (root / "mkdocs.yml").write_text(
        "site_name: SigmaHQ\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules:\n" + folders,
        encoding="utf-8",
    )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "-f", str(root / "mkdocs.yml"), "-d", str(root / "site")],
        capture_output=True, text=True, timeout=900, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return root / "site"


@pytest.fixture(scope="module")
def catalog(corpus_site) -> dict:
    return json.loads((corpus_site / "exports/catalog.json").read_text(encoding="utf-8"))


def test_every_rule_has_a_page(corpus_site, catalog):
    assert catalog["summary"]["rules"] > 3000
    slugs = {rule["slug"] for rule in catalog["rules"]}
    assert len(slugs) == len(catalog["rules"])
    pages = {path.parent.name for path in (corpus_site / "rules").glob("*/index.html")}
    assert slugs <= pages
    assert pages - slugs == set()


def test_no_broken_internal_links(corpus_site):
    broken = broken_links(corpus_site)
    assert broken == [], f"{len(broken)} broken links, e.g. {broken[:10]}"


def test_technique_pages_list_exactly_the_mapped_rules(corpus_site, catalog):
    expected: dict[str, set[str]] = defaultdict(set)
    for rule in catalog["rules"]:
        attack = rule.get("attack") or {}
        for tactic in attack.get("tactics", []):
            for technique in tactic["techniques"]:
                expected[technique["id"]].add(rule["slug"])
        for technique_id in attack.get("unknown", []):
            expected[technique_id].add(rule["slug"])
    assert len(expected) > 300
    pages = sorted((corpus_site / "techniques").glob("*/index.html"))
    seen = set()
    for page in pages:
        html = page.read_text(encoding="utf-8")
        technique_id = page.parent.name.upper().replace("-", ".")
        listed = listed_slugs(corpus_site, html)
        assert listed == expected.get(technique_id, set()), technique_id
        seen.add(technique_id)
    assert set(expected) <= seen, f"techniques without a page: {sorted(set(expected) - seen)[:10]}"


def listed_slugs(site: Path, html: str) -> set[str]:
    """The rules a list page lists: its rows, or all of them from rules.json when it holds only the first."""
    positions = re.search(r'<script type="application/json" class="sc-list-positions">(.*?)</script>', html)
    if positions is None:
        return {href.rstrip("/").split("/")[-1] for href, _ in anchors(html, "sc-rules") if "/rules/" in href}
    rows = json.loads((site / "assets/sigma-catalog/rules.json").read_text(encoding="utf-8"))["rules"]
    return {rows[index][0] for index in json.loads(positions.group(1))}


#: The list pages: each under 300 KB of HTML, however many rules it lists.
LIST_PAGES = ["rules/index.html", "attack/index.html", "coverage/index.html", "find/index.html", "levels/*/index.html",
              "statuses/*/index.html", "authors/*/index.html", "tags/*/index.html", "logsources/*/index.html",
              "fields/*/index.html", "techniques/*/index.html", "tactics/*/index.html"]


def test_list_pages_under_300_kb(corpus_site):
    pages = [page for pattern in LIST_PAGES for page in corpus_site.glob(pattern)]
    assert len(pages) > 1000
    big = sorted((page.stat().st_size // 1024, str(page.relative_to(corpus_site))) for page in pages if page.stat().st_size > 300 * 1024)
    assert big == []
    # the long lists hold their first rows and load the others
    assert 'class="sc-list-positions"' in (corpus_site / "rules/index.html").read_text(encoding="utf-8")


def test_sizes(corpus_site):
    rule_pages = list((corpus_site / "rules").glob("*/index.html"))
    average = sum(page.stat().st_size for page in rule_pages) / len(rule_pages)
    assert average < 40 * 1024, f"average rule page {average / 1024:.1f} KB"
    index = (corpus_site / "assets/sigma-catalog/search-index.json").stat().st_size
    assert index < 5 * 1024 * 1024, f"search index {index / 1e6:.1f} MB"
