"""The catalog site of this repository's rules/, built with the real `mkdocs build --strict`.

The reference rule page (../shared/reference/rule-page.txt) is checked section by section: order,
headings, wording, tables. Then escaping of hostile rule text, the exports, the search index, the
ProperDocs build and the plugin's own errors.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from linkcheck import anchors, article_text, broken_links, code_text, links_of, tables

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REFERENCE_SLUG = "wmi-module-loaded-by-suspicious-process"
REFERENCE_RULE = REPO / "rules/windows/image_load/wmi-module-loaded-by-suspicious-process.yml"
SHARED_REFERENCE = REPO.parent / "shared/reference"


def run_build(tool: str, config: Path, site: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [str(BIN / tool), "build", "--strict", "-f", str(config), "-d", str(site), *extra],
        capture_output=True, text=True, env=env, timeout=600,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    result = run_build("mkdocs", REPO / "mkdocs.yml", out)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def reference_html(site) -> str:
    return (site / "rules" / REFERENCE_SLUG / "index.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def catalog_json(site) -> dict:
    return json.loads((site / "exports/catalog.json").read_text(encoding="utf-8"))


# --- the reference rule page ----------------------------------------------------------------------


def test_build_strict_succeeds(site):
    assert (site / "index.html").is_file()
    assert (site / "rules" / REFERENCE_SLUG / "index.html").is_file()
    assert not (site / "sigma-catalog-frame").exists(), "the frame page must not stay in the site"


def test_reference_sections_in_order_with_the_reference_wording(reference_html):
    text = article_text(reference_html)
    expected = [
        "Detection rules › Sigma",
        "WMI module loaded by suspicious process",
        "Detects scenarios where an attacker attempts to load WMI modules from a suspicious process (like PowerShell).",
        "MITRE ATT&CK coverage",
        "Rule body",
        "yaml",
        "title: WMI module loaded by suspicious process",
        "Stages and Predicates",
        "Stage 0: condition",
        "selection and not filter",
        "Stage 1: selection",
        "Stage 2: not filter",
        "Exclusions",
        "Top-level NOT(...) conjuncts: predicates this rule actively suppresses.",
        "Indicators",
        "Each row is a field, operator, and value that the rule matches. The corpus column counts how many other "
        "rules in the catalog look for the same combination: high numbers point to widely-used, community-vetted "
        "indicators. Blank or 1 shows that the indicator is specific to this rule.",
    ]
    lines = text.splitlines()
    position = -1
    for wanted in expected:
        following = [i for i, line in enumerate(lines) if line == wanted and i > position]
        assert following, f"{wanted!r} missing (or out of order) after line {position}: {lines[position:position + 3]}"
        position = following[0]
    # the breadcrumb, the title and the description come first, in this order
    assert lines[:3] == expected[:3]
    headings = re.findall(r"<h2[^>]*>(.*?)</h2>", reference_html)
    assert headings[:5] == ["MITRE ATT&amp;CK coverage", "Rule body", "Stages and Predicates", "Exclusions", "Indicators"]


def test_reference_attack_row(reference_html):
    (table,) = tables(reference_html, "sc-attack")
    assert table[0] == ["Tactic", "Techniques"]
    assert table[1:] == [["Execution", "T1047 Windows Management Instrumentation"]]
    links = dict((text, href) for href, text in anchors(reference_html, "sc-attack"))
    assert links["T1047 Windows Management Instrumentation"] == "https://attack.mitre.org/techniques/T1047/"
    assert "ATT&amp;CK Enterprise v" in reference_html  # which release the page was built against


def test_reference_rule_body_is_the_file_byte_for_byte(reference_html):
    assert code_text(reference_html, "sc-code") == REFERENCE_RULE.read_text(encoding="utf-8")
    assert 'class="sc-code-label">yaml<' in reference_html
    assert '<span class="c1"># image loaded</span>' in reference_html  # comments kept, highlighted
    assert "linenos" not in reference_html and 'id="__codelineno' not in reference_html


def test_reference_stages(reference_html):
    text = article_text(reference_html)
    stage1 = text.split("Stage 1: selection\n", 1)[1].split("\nStage 2", 1)[0].splitlines()
    assert [line.strip() for line in stage1] == [
        "selection:", "EventID: 7", "ImageLoaded|endswith:",
        "- '\\wmiclnt.dll'", "- '\\WmiApRpl.dll'", "- '\\wmiprov.dll'", "- '\\wmiutils.dll'", "- '\\wbemcomn.dll'",
        "- '\\WMINet_Utils.dll'", "- '\\wbemsvc.dll'", "- '\\fastprox.dll'", "- '\\wmi*'",
    ]
    stage2 = text.split("Stage 2: not filter\n", 1)[1].split("\nExclusions", 1)[0].splitlines()
    assert [line.strip() for line in stage2] == [
        "filter:", "Image|endswith:", "- '\\wmiprvse.exe'", "- '\\wmiapsrv.exe'", "- '\\svchost.exe'",
    ]


def test_reference_exclusions(reference_html):
    (table,) = tables(reference_html, "sc-exclusions")
    assert table == [
        ["Field", "Kind", "Excluded values"],
        ["Image", "ends_with", "\\svchost.exe"],
        ["Image", "ends_with", "\\wmiapsrv.exe"],
        ["Image", "ends_with", "\\wmiprvse.exe"],
    ]


def test_reference_indicators(reference_html):
    (table,) = tables(reference_html, "sc-indicators")
    assert table[0] == ["Field", "Kind", "Values", "Corpus"]
    rows = table[1:]
    image_loaded = [row for row in rows if row[0] == "ImageLoaded"]
    assert [row[2] for row in image_loaded] == [
        "\\wmiclnt.dll", "\\WmiApRpl.dll", "\\wmiprov.dll", "\\wmiutils.dll", "\\wbemcomn.dll",
        "\\WMINet_Utils.dll", "\\wbemsvc.dll", "\\fastprox.dll", "\\wmi*",
    ]
    assert all(row[1] == "ends_with" for row in image_loaded)
    assert ["EventID", "equals", "7"] in [row[:3] for row in rows]
    assert len(rows) == 10
    assert rows[0][0] == "ImageLoaded"  # as on the reference page


def test_reference_metadata(reference_html):
    (table,) = tables(reference_html, "sc-details")
    details = {row[0]: row[1] for row in table}
    assert details["Status"] == "experimental"
    assert details["Level"] == "high"
    assert details["Author"] == "shortly adapted from Roberto Rodriguez rule"
    assert "windows / image_loaded" in details["Log source"]
    assert details["False positives"] == "None"
    assert "rules/windows/image_load/wmi-module-loaded-by-suspicious-process.yml" in details["Source file"]
    references = [href for href, _ in anchors(reference_html, "sc-details") if href.startswith("http")]
    assert len(references) == 6  # seven listed, one twice
    assert len(set(references)) == 6


def test_reference_page_matches_the_shared_reference_text(reference_html):
    """Every line of the shared reference page appears on ours, in the same order."""
    reference = SHARED_REFERENCE / "rule-page.txt"
    if not reference.is_file():
        pytest.skip("../shared/reference is not here")
    ours = [line.strip() for line in article_text(reference_html).splitlines()]
    position = 0
    for line in reference.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("|") and line.endswith("|") and set(line) <= set("|- ") or line == "|":
            continue
        # the reference flattens tables to "a | b | c |" and glues the condition to the next heading
        cells = [cell.strip() for cell in line.strip("|").split("|") if cell.strip()]
        if cells == ["Rule body yaml"]:  # the heading and the code block's language label
            cells = ["Rule body", "yaml"]
        for cell in cells:
            for piece in (cell.split("Stage 1:")[0], "Stage 1:" + cell.split("Stage 1:")[1]) if "Stage 1:" in cell else (cell,):
                piece = piece.strip()
                hits = [i for i in range(position, len(ours)) if piece in ours[i] or ours[i] == piece]
                assert hits, f"reference text {piece!r} not found after our line {position}"
                position = hits[0]


def test_rule_pages_stay_out_of_the_navigation(site, reference_html):
    home = (site / "index.html").read_text(encoding="utf-8")
    nav = home.split('class="md-nav md-nav--primary"', 1)[1].split("md-sidebar--secondary", 1)[0]
    assert not re.search(r'href="[^"]*rules/[0-9a-z-]+/"', nav)
    nav = nav.replace("&amp;", "&")
    for label in ("Search", "All rules", "ATT&CK tactics", "Coverage matrix",
                  "Log sources", "Levels", "Statuses", "Authors", "Tags", "Fields", "Shared indicators", "Problems", "Exports"):
        assert label in nav, label


def test_readers_nav_first_project_docs_under_about(site):
    home = (site / "index.html").read_text(encoding="utf-8")
    nav = home.split('class="md-nav md-nav--primary"', 1)[1].split("md-sidebar--secondary", 1)[0]
    labels = [" ".join(text.split()) for text in re.findall(r'class="md-ellipsis">\s*(.*?)\s*<', nav, re.S)]
    assert labels[:3] == ["Home", "Search", "All rules"]
    assert labels.index("All rules") < labels.index("ATT&CK tactics") < labels.index("Coverage matrix") < labels.index("Problems")
    assert labels.index("Problems") < labels.index("About") < labels.index("What the engine computes")
    assert labels.count("Sigma detection rule catalog") == 0  # the site name is the header's, not a nav entry
    assert "Errors" not in labels
    # the Problems page has one address; the old one redirects to it
    assert (site / "problems/index.html").is_file()
    assert 'content="0; url=../problems/"' in (site / "errors/index.html").read_text(encoding="utf-8")


def test_every_document_has_a_page_and_ids_redirect(site, catalog_json):
    for rule in catalog_json["rules"]:
        assert (site / "rules" / rule["slug"] / "index.html").is_file(), rule["slug"]
        if rule["id"]:
            redirect = site / "rule" / rule["id"].lower() / "index.html"
            assert redirect.is_file()
            assert f'href="../../rules/{rule["slug"]}/"' in redirect.read_text(encoding="utf-8")


def test_no_broken_internal_links(site):
    assert broken_links(site) == []


def test_correlations_and_filters_link_both_ways(site, catalog_json):
    by_slug = {rule["slug"]: rule for rule in catalog_json["rules"]}
    kinds = {rule["kind"] for rule in catalog_json["rules"]}
    assert {"correlation", "filter"} <= kinds
    for rule in catalog_json["rules"]:
        if rule["kind"] not in ("correlation", "filter"):
            continue
        html = (site / "rules" / rule["slug"] / "index.html").read_text(encoding="utf-8")
        targets = {href.split("/")[-2] for href, _ in anchors(html, "sc-targets")}
        assert set(rule["targets"]) <= targets
        for slug in rule["targets"]:
            target_html = (site / "rules" / slug / "index.html").read_text(encoding="utf-8")
            assert f'href="../../rules/{rule["slug"]}/"' in target_html
            listed = by_slug[slug]["correlations" if rule["kind"] == "correlation" else "filters"]
            assert rule["slug"] in listed
        if rule["kind"] == "correlation":
            assert "<h2 id=\"correlation\">Correlation</h2>" in html
            assert rule["correlation"]["timespan"] in html
        else:
            for slug in rule["targets"]:
                target_html = (site / "rules" / slug / "index.html").read_text(encoding="utf-8")
                assert "Added by filter" in target_html  # its exclusions show on the rules it applies to


def test_browse_pages(site, catalog_json):
    home = (site / "index.html").read_text(encoding="utf-8")
    figures = {row[0]: row[1] for row in tables(home, "sc-figures")[0]}
    assert int(figures["Rules"].replace(",", "")) == catalog_json["summary"]["rules"]
    assert figures["ATT&CK release"] == f"Enterprise v{catalog_json['attack_release']}"
    for link in ("exports/catalog.json", "exports/rules-techniques.csv", "exports/navigator/all-rules.json"):
        assert f'href="{link}"' in home
    execution = (site / "tactics/execution/index.html").read_text(encoding="utf-8")
    assert "T1047 Windows Management Instrumentation" in execution
    technique = (site / "techniques/t1047/index.html").read_text(encoding="utf-8")
    assert f"../../rules/{REFERENCE_SLUG}/" in technique
    coverage = (site / "coverage/index.html").read_text(encoding="utf-8")
    assert coverage.index("Reconnaissance") < coverage.index("Execution") < coverage.index("Impact")
    errors = (site / "problems/index.html").read_text(encoding="utf-8")
    problems = catalog_json["problems"]
    for problem in problems:
        escaped = problem["message"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;").replace('"', "&#34;")
        assert escaped[:40] in errors


def test_shared_indicator_pages(site, catalog_json):
    shared = catalog_json["shared_indicators"]
    assert shared, "the repository's rules share some indicators"
    html = None
    for rule in catalog_json["rules"]:
        for indicator in rule.get("analysis", {}).get("indicators", []):
            if indicator["corpus_count"] > 1:
                page = (site / "rules" / rule["slug"] / "index.html").read_text(encoding="utf-8")
                links = [href for href, text in anchors(page, "sc-indicators") if text == str(indicator["corpus_count"])]
                assert links
                html = (site / "rules" / rule["slug"] / links[0] / "index.html").resolve().read_text(encoding="utf-8")
                break
        if html:
            break
    assert html is not None
    listed = [href for href, _ in anchors(html, "sc-rules")]
    assert len(listed) >= 2


# --- exports and search ---------------------------------------------------------------------------


def test_exports_parse(site, catalog_json):
    assert catalog_json["schema_version"] >= 1
    rule = next(r for r in catalog_json["rules"] if r["slug"] == REFERENCE_SLUG)
    assert rule["page"] == f"rules/{REFERENCE_SLUG}/"
    assert rule["source"]["file"] == "rules/windows/image_load/wmi-module-loaded-by-suspicious-process.yml"
    assert not rule["source"]["root"].startswith("/"), "no build-machine paths in the export"
    for path in site.rglob("*"):
        if path.suffix in (".html", ".json", ".csv", ".xml"):
            assert str(REPO) not in path.read_text(encoding="utf-8"), f"{path} names the build machine's folders"
    assert rule["attack"]["tactics"][0]["techniques"][0]["id"] == "T1047"
    rows = list(csv.DictReader(io.StringIO((site / "exports/rules-techniques.csv").read_text(encoding="utf-8"))))
    assert {"slug", "technique_id", "tactic"} <= set(rows[0])
    assert any(row["slug"] == REFERENCE_SLUG and row["technique_id"] == "T1047" and row["tactic"] == "Execution" for row in rows)
    layers = sorted((site / "exports/navigator").glob("*.json"))
    assert (site / "exports/navigator/all-rules.json") in layers and len(layers) >= 2
    for path in layers:
        layer = json.loads(path.read_text(encoding="utf-8"))
        assert layer["versions"]["layer"] == "4.5"
        assert layer["domain"] == "enterprise-attack"
        assert layer["versions"]["attack"] == catalog_json["attack_release"].split(".")[0]
        for technique in layer["techniques"]:
            assert re.fullmatch(r"T\d{4}(\.\d{3})?", technique["techniqueID"])
            assert technique["score"] >= 1 and technique["tactic"]
        assert layer["gradient"]["maxValue"] > layer["gradient"]["minValue"]
    whole = json.loads((site / "exports/navigator/all-rules.json").read_text(encoding="utf-8"))
    t1047 = [t for t in whole["techniques"] if t["techniqueID"] == "T1047"]
    assert t1047 and t1047[0]["tactic"] == "execution"


def test_search_index(site, catalog_json):
    raw = (site / "assets/sigma-catalog/search-index.json").read_bytes()
    assert len(raw) < 200_000
    index = json.loads(raw)
    assert index["page"] == "rules/{slug}/"
    rules = {rule[0]: rule for rule in index["rules"]}
    assert set(rules) == {rule["slug"] for rule in catalog_json["rules"]}
    reference = rules[REFERENCE_SLUG]
    assert reference[1] == "WMI module loaded by suspicious process" and reference[5] == ["T1047"]
    values = [index["values"][i] for i in reference[6]]
    assert "\\wmiclnt.dll" in values and "7" in values


# --- hostile input --------------------------------------------------------------------------------

HOSTILE_RULE = r"""title: <script>alert(1)</script>
id: 0d9f4c52-6a1c-4c53-9a44-3c2b7b4c1a01
status: test
description: "<img src=x onerror=alert(1)> and </textarea><script>alert(3)</script>"
references:
    - javascript:alert(1)
    - 'JavaScript:alert(2)'
    - data:text/html,<script>alert(4)</script>
    - https://example.com/"onmouseover="alert(5)
    - https://example.com/ok
author: '" onmouseover="alert(6)'
tags:
    - attack.execution
    - <b>tag</b>
logsource:
    product: <svg onload=alert(7)>
    category: process_creation
detection:
    selection:
        CommandLine|contains: '</code><script>alert(8)</script>'
        Image|endswith: '\x.exe'
    filter_main:
        User: '<script>alert(9)</script>'
    condition: selection and not filter_main
falsepositives:
    - '<iframe src="javascript:alert(10)">'
level: high
"""

OTHER_RULE = r"""title: A second rule sharing the hostile value
id: 0d9f4c52-6a1c-4c53-9a44-3c2b7b4c1a02
status: test
logsource:
    product: <svg onload=alert(7)>
    category: process_creation
detection:
    selection:
        CommandLine|contains: '</code><script>alert(8)</script>'
    condition: selection
level: low
"""


def write_project(root: Path, rules: dict[str, str], plugin_options: str = "") -> Path:
    (root / "rules").mkdir(parents=True)
    for name, text in rules.items():
        (root / "rules" / name).write_text(text, encoding="utf-8")
    (root / "docs").mkdir()
    config = root / "mkdocs.yml"
    options = "".join(f"      {line}\n" for line in plugin_options.splitlines())
    config.write_text(
        "site_name: Test catalog\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules:\n        - rules\n" + options,
        encoding="utf-8",
    )
    return config


EXCLUSIONS_RULE = r"""title: Exclusions of every shape
id: 0d9f4c52-6a1c-4c53-9a44-3c2b7b4c1a03
status: test
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\x.exe'
    filter_main_parent:
        ParentImage|endswith:
            - '\b.exe'
            - '\a.exe'
    filter_optional_backup:
        User: 'svc'
        CommandLine|contains: 'backup'
    filter_c1:
        Image|startswith: 'C:\Program Files\'
    filter_c2:
        Signed: 'true'
    condition: selection and not filter_main_parent and not filter_optional_backup and not (filter_c1 and filter_c2)
level: medium
"""


def built_site(root: Path, rules: dict[str, str]) -> Path:
    """The site of a project of these rules, built with mkdocs (the build must succeed)."""
    result = run_build("mkdocs", write_project(root, rules), root / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    return root / "site"


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory) -> Path:
    return built_site(tmp_path_factory.mktemp("hostile"), {"hostile.yml": HOSTILE_RULE, "other.yml": OTHER_RULE, "exclusions.yml": EXCLUSIONS_RULE})


def test_hostile_rule_text_is_escaped_everywhere(hostile_site):
    pages = list(hostile_site.rglob("*.html"))
    assert len(pages) > 10
    for path in pages + list(hostile_site.rglob("*.json")):
        text = path.read_text(encoding="utf-8")
        low = text.lower()
        assert "<script>alert" not in low, path
        assert "<img src=x" not in low and "<svg onload" not in low and "<iframe" not in low and "<b>tag" not in low, path
        assert 'href="javascript:' not in low and "href='javascript:" not in low and 'href="data:' not in low, path
        assert "onmouseover=\"alert" not in low, path
    page = next(hostile_site.glob("rules/*/index.html")).parent
    html = (hostile_site / "rules/0d9f4c52-6a1c-4c53-9a44-3c2b7b4c1a01/index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    hrefs = [href for href in links_of(html) if "example.com" in href]
    assert hrefs == ["https://example.com/ok"], "only the clean http(s) reference becomes a link"
    assert "javascript:alert(1)" in html  # shown, as text
    assert page.exists()


def test_exclusions_are_grouped_not_flattened(hostile_site):
    html = (hostile_site / "rules/0d9f4c52-6a1c-4c53-9a44-3c2b7b4c1a03/index.html").read_text(encoding="utf-8")
    (table,) = tables(html, "sc-exclusions")
    text = [" | ".join(row) for row in table]
    main = text.index(next(line for line in text if "filter_main_parent" in line))
    assert "main filter: always applies" in text[main]
    assert text[main + 1:main + 3] == ["ParentImage | ends_with | \\a.exe", "ParentImage | ends_with | \\b.exe"]  # sorted
    optional = text.index(next(line for line in text if "filter_optional_backup" in line))
    assert "optional filter: environment specific" in text[optional]
    assert text[optional + 1] == "Excluded only when all of these match:"
    assert set(text[optional + 2:optional + 4]) == {"User | equals | svc", "CommandLine | contains | backup"}
    combined = text.index(next(line for line in text if "filter_c1 and filter_c2" in line))
    assert "excluded only in combination" in text[combined]
    assert text[combined + 1].startswith("Excluded only when all of these searches match together: filter_c1")
    assert text[combined + 3].startswith("Together with filter_c2")
    assert html.count('class="sc-exgroup') == 3


def test_hostile_csv_cells_cannot_start_formulas(tmp_path):
    from catalog.site.exports import _cell

    assert _cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert _cell("+1") == "'+1" and _cell("@x") == "'@x" and _cell("-2") == "'-2"
    assert _cell("plain") == "plain"


# --- ProperDocs, options and errors -----------------------------------------------------------------


def test_properdocs_builds_the_site(tmp_path):
    result = run_build("properdocs", REPO / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    html = (tmp_path / "site/rules" / REFERENCE_SLUG / "index.html").read_text(encoding="utf-8")
    assert "Stages and Predicates" in html
    assert (tmp_path / "site/exports/catalog.json").is_file()


def test_missing_rule_folder_is_a_plugin_error(tmp_path):
    config = write_project(tmp_path, {"a.yml": OTHER_RULE})
    config.write_text(config.read_text().replace("- rules", "- no-such-folder"), encoding="utf-8")
    result = run_build("mkdocs", config, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-folder" in result.stderr and "does not exist" in result.stderr


def test_strict_option_lists_every_rule_error(tmp_path):
    broken = {"a.yml": OTHER_RULE, "b.yml": "title: [unclosed\n", "c.yml": "title: no detection\nlogsource: {}\n"}
    config = write_project(tmp_path, broken, "strict: true")
    result = run_build("mkdocs", config, tmp_path / "site")
    assert result.returncode != 0
    assert "rule errors" in result.stderr
    assert "b.yml" in result.stderr and "c.yml" in result.stderr


def test_enabled_false_leaves_the_site_as_mkdocs_makes_it(tmp_path):
    """`enabled: false`: no catalog (not even for broken rules under strict), only the docs pages."""
    config = write_project(tmp_path / "project", {"b.yml": "title: [unclosed\n"}, "strict: true\nenabled: false")
    (config.parent / "docs" / "index.md").write_text("# Home\n\nThe docs only.\n", encoding="utf-8")
    result = run_build("mkdocs", config, tmp_path / "site")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert "sigma-catalog" not in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert not (tmp_path / "site" / "rules").exists() and not (tmp_path / "site" / "assets" / "sigma-catalog").exists()


def test_rule_folder_mapping_with_source_url(tmp_path):
    config = write_project(tmp_path, {"a.yml": OTHER_RULE})
    text = config.read_text().replace(
        "        - rules\n",
        "        - path: rules\n          name: Our rules\n          source_url: https://github.com/example/repo/blob/main/rules\n",
    )
    config.write_text(text, encoding="utf-8")
    result = run_build("mkdocs", config, tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (tmp_path / "site/rules/0d9f4c52-6a1c-4c53-9a44-3c2b7b4c1a02/index.html").read_text(encoding="utf-8")
    assert 'href="https://github.com/example/repo/edit/main/rules/a.yml"' in html
    assert 'href="https://github.com/example/repo/blob/main/rules/a.yml"' in html
    assert "from Our rules" in html


def test_links_hold_without_directory_urls(tmp_path):
    config = write_project(tmp_path, {"a.yml": OTHER_RULE, "b.yml": EXCLUSIONS_RULE})
    config.write_text("use_directory_urls: false\n" + config.read_text(), encoding="utf-8")
    (tmp_path / "docs/json-schema.md").write_text("# schema\n", encoding="utf-8")
    result = run_build("mkdocs", config, tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    assert broken_links(tmp_path / "site") == []
    index = json.loads((tmp_path / "site/assets/sigma-catalog/search-index.json").read_text(encoding="utf-8"))
    assert index["page"] == "rules/{slug}/index.html"
    html = (tmp_path / "site/rules/0d9f4c52-6a1c-4c53-9a44-3c2b7b4c1a03/index.html").read_text(encoding="utf-8")
    assert 'href="../../rules/index.html"' in html


def test_source_url_must_be_http(tmp_path):
    config = write_project(tmp_path, {"a.yml": OTHER_RULE})
    text = config.read_text().replace("        - rules\n", "        - path: rules\n          source_url: javascript:alert(1)\n")
    config.write_text(text, encoding="utf-8")
    result = run_build("mkdocs", config, tmp_path / "site")
    assert result.returncode != 0
    assert "source_url" in result.stderr


# --- mkdocs serve: rebuilds -------------------------------------------------------------------------


def test_serve_rebuilds_only_what_changed(tmp_path):
    """What `mkdocs serve --dirty` does on a rule edit, through MkDocs' Python API in this process."""
    import shutil

    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    project = tmp_path / "project"
    shutil.copytree(REPO / "rules", project / "rules")
    (project / "docs").mkdir()
    (project / "mkdocs.yml").write_text(
        "site_name: Serve\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules: [rules]\n", encoding="utf-8"
    )
    site = tmp_path / "site"

    def config():
        return load_config(str(project / "mkdocs.yml"), site_dir=str(site))

    first = config()
    first.plugins.on_startup(command="serve", dirty=True)
    build(first, serve_url="http://127.0.0.1:8000/", dirty=True)
    with_ids = [p for p in sorted((project / "rules").rglob("*.yml")) if re.search(r"^id: *\S+", p.read_text(encoding="utf-8"), re.M)]
    rule, victim = with_ids[0], with_ids[1]
    rule_id = re.search(r"^id: *(\S+)", rule.read_text(encoding="utf-8"), re.M).group(1).lower()
    page = site / "rules" / rule_id / "index.html"
    other = site / "rules" / REFERENCE_SLUG / "index.html"
    other_mtime = other.stat().st_mtime_ns
    rule.write_text(re.sub(r"^title: *", "title: EDITED ", rule.read_text(encoding="utf-8"), count=1, flags=re.M), encoding="utf-8")
    build(config(), serve_url="http://127.0.0.1:8000/", dirty=True)
    assert "EDITED " in page.read_text(encoding="utf-8")
    assert other.stat().st_mtime_ns == other_mtime, "an unchanged rule page was written again"
    first.plugins["sigma-catalog"].wait_for_exports()  # serve writes them after the build
    served_json = (site / "exports/catalog.json").read_bytes()
    # the incremental catalog.json of serve is byte for byte the one a plain build writes
    plain = tmp_path / "plain"
    result = run_build("mkdocs", project / "mkdocs.yml", plain)
    assert result.returncode == 0, result.stderr[-3000:]
    assert served_json == (plain / "exports/catalog.json").read_bytes()
    for name in ("rules", "authors", "techniques", "indicators"):
        for path in (plain / name).rglob("index.html"):
            assert path.read_text(encoding="utf-8") == (site / path.relative_to(plain)).read_text(encoding="utf-8"), path
    # a deleted rule's page (and its /rule/<id>/ redirect) leaves the served site
    victim_id = re.search(r"^id: *(\S+)", victim.read_text(encoding="utf-8"), re.M).group(1).lower()
    assert (site / "rules" / victim_id / "index.html").exists()
    victim.unlink()
    build(config(), serve_url="http://127.0.0.1:8000/", dirty=True)
    assert not (site / "rules" / victim_id / "index.html").exists()
    assert not (site / "rule" / victim_id / "index.html").exists()


def test_load_cache_reads_only_changed_files(tmp_path, monkeypatch):
    from catalog import pipeline
    from catalog.site.output import LoadCache

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yml").write_text(OTHER_RULE, encoding="utf-8")
    (rules / "b.yml").write_text(EXCLUSIONS_RULE, encoding="utf-8")
    cache = LoadCache()
    first = cache.load([str(rules)])
    assert cache.read == 2 and len(first.documents) == 2
    again = cache.load([str(rules)])
    assert cache.read == 0
    assert [d is e for d, e in zip(first.documents, again.documents)] == [True, True]  # the same objects
    (rules / "b.yml").write_text(EXCLUSIONS_RULE.replace("Exclusions of every shape", "Changed"), encoding="utf-8")
    changed = cache.load([str(rules)])
    assert cache.read == 1 and changed.documents[0] is first.documents[0] and changed.documents[1].title == "Changed"


# --- units ----------------------------------------------------------------------------------------


def test_yaml_highlighting_keeps_every_character():
    import html as html_module

    from catalog.site.yaml_html import highlight_yaml

    samples = [path.read_text(encoding="utf-8") for path in sorted((REPO / "rules").rglob("*.yml"))]
    samples += ["a: |\n  block <x>\n  & more\nb: 'it''s' # c\n", "- 'x\r\n- \"y\\\"\"\n", "", "\n", "key:\tvalue"]
    for text in samples:
        out = str(highlight_yaml(text))
        assert "<script" not in out.lower()
        assert html_module.unescape(re.sub(r"<[^>]+>", "", out)) == text


def test_only_http_urls_become_links():
    from catalog.site.addresses import external_url

    assert external_url("https://attack.mitre.org/techniques/T1047/") == "https://attack.mitre.org/techniques/T1047/"
    for bad in ("javascript:alert(1)", " JAVASCRIPT:alert(1)", "data:text/html,x", "//evil.example", "/local",
                'https://x.example/"><script>', "https://x.example/a b", "vbscript:x", "https://"):
        assert external_url(bad) is None, bad


def test_slugs_are_safe():
    from catalog.site.addresses import indicator_slug, key_slug, technique_slug

    for text in ("../../etc/passwd", "<script>", "CommandLine", "a/b\\c", "", "Ü-ñ", "x" * 300):
        assert re.fullmatch(r"[a-z0-9-]+", key_slug(text)), text
    assert key_slug("CommandLine") == key_slug("commandline")
    assert technique_slug("T1059.001") == "t1059-001"
    assert re.fullmatch(r"[0-9a-f]{16}", indicator_slug(("Image", "ends_with", "\\x.exe")))


# --- queries for real backends and similar rules (issue 12) -----------------------------------------


def test_reference_page_queries_after_indicators(reference_html):
    pytest.importorskip("sigma.backends.splunk")
    headings = re.findall(r"<h2[^>]*>(.*?)</h2>", reference_html)
    # after the sections the reference page fixes (its order test keeps the first five)
    assert headings.index("Queries") > headings.index("Indicators") and headings.index("Similar rules") > headings.index("Queries")
    text = article_text(reference_html)
    splunk = next(line for line in text.splitlines() if line.startswith("EventID=7 ImageLoaded IN ("))
    assert splunk.count('"*\\\\') == 12  # the nine ImageLoaded values, and the filter's three images
    assert 'from * metadata _id, _index, _version | where event.code=="7"' in text
    assert "(EventID == 7 and (ImageLoaded endswith" in text
    for label in ("Splunk SPL", "Elasticsearch Lucene", "Elasticsearch ES|QL", "Microsoft KQL"):
        assert f">{label}</button>" in reference_html.replace("&#124;", "|")
    assert "pysigma-backend-splunk 2." in text and "pipeline windows-logsources" in text
    assert reference_html.count('class="sc-query"') == 4  # each gets the copy button (sigma-catalog.js)


def test_overlap_page_and_similar_rules(site, reference_html):
    assert 'id="similar">Similar rules</h2>' in reference_html
    overlap = (site / "overlap" / "index.html").read_text(encoding="utf-8")
    assert "<h1>Overlap</h1>" in overlap


def test_overlap_groups_are_named_by_their_best_pair_with_each_rule_s_log_source(tmp_path):
    from test_similarity import COMMON, rule

    selection = {"Image|endswith": ["\\tool.exe"], "CommandLine|contains": ["--steal", "--dump"]}
    site = built_site(tmp_path, {
        "original.yml": rule("Tool <steals>", 1, selection),
        "copy.yml": rule("Tool steals again", 2, selection, category="image_load"),
        "linux.yml": rule("Tool on Linux", 3, selection, product="linux"),
        "pair-a.yml": rule("Pair A", 4, {"CommandLine|contains": ["--alpha", "--beta"]}),
        "pair-b.yml": rule("Pair B", 5, {"CommandLine|contains": ["--alpha", "--beta"]}),
        **COMMON,
    })
    html = (site / "overlap" / "index.html").read_text(encoding="utf-8")
    assert "2 groups of 5 rules." in html
    headings = re.findall(r'<h2 id="cluster-\d+">(.*?)</h2>', html)
    assert len(headings) == 2 and headings[1] == "Pair A and Pair B"
    assert re.fullmatch(r"Tool (&lt;steals&gt;|steals again|on Linux), Tool (&lt;steals&gt;|steals again|on Linux) and 1 more", headings[0])
    for source in ("windows / process_creation", "windows / image_load", "linux / process_creation"):
        assert f'<small class="sc-note">{source}</small>' in html


def test_the_collector_is_back_on_after_a_build_and_skips_what_an_ending_command_made(tmp_path):
    """`mkdocs build` ends with the build: what it made is frozen before the collector comes back
    on (its first collection would scan all of it). A build run from Python, which no command
    ends, keeps it all collectable."""
    import gc

    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.config.defaults import MkDocsConfig

    config_path = write_project(tmp_path, {"exclusions.yml": EXCLUSIONS_RULE})
    frozen = gc.get_freeze_count()
    try:
        for command, freezes in ((None, False), ("build", True)):
            MkDocsConfig.plugins.plugin_cache.clear()  # a fresh plugin object, as a new mkdocs command has
            config = load_config(str(config_path), site_dir=str(tmp_path / "site"))
            if command is not None:
                config.plugins.on_startup(command=command, dirty=False)
            build(config)
            assert gc.isenabled()
            assert (gc.get_freeze_count() > frozen) is freezes, command
    finally:
        gc.unfreeze()  # collectable again, as objects of a test process should be


def test_a_page_written_over_a_longer_one_is_the_new_page_only(tmp_path):
    """Pages are written with plain os calls (`--dirty` builds write over the last build's pages)."""
    from catalog.site.exports import FILE_MODE
    from catalog.site.rendering import write_index

    write_index(str(tmp_path), "rules/x/", b"a page longer than the next one", set())
    write_index(str(tmp_path), "rules/x/", b"short", set())
    write_index(str(tmp_path), "", b"home", set())
    assert (tmp_path / "rules/x/index.html").read_bytes() == b"short"
    assert (tmp_path / "index.html").read_bytes() == b"home"
    assert (tmp_path / "rules/x/index.html").stat().st_mode & 0o777 == FILE_MODE
