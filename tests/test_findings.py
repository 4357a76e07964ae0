"""Issue 8's display and findings items, on one small site of original rules built with mkdocs:
field references and edge spaces shown as such, a revoked tag next to its replacement listed once,
layer scores by rule, list log sources, findings at the top of a rule page, notices, dialects, and
one set of findings for `catalog check`, `catalog analyze` and the Problems page."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from catalog.attack import load_knowledge
from catalog.check import run_check
from catalog.cli import main
from catalog.pipeline import build_catalog
from catalog.problems import Code
from catalog.site.addresses import NAVIGATOR, SEARCH_INDEX, TECHNIQUES_CSV, item_path, rule_path, technique_path
from catalog.site.pages import SiteBuilder
from catalog.site.render import Renderer

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

HEADER = "status: test\nlevel: medium\n"
PROCESS = "logsource:\n    product: windows\n    category: process_creation\n"


def simple_rule(number: int, title: str, selection: str, tags: tuple[str, ...] = (), extra: str = "") -> str:
    """A process-creation rule with one selection (and its tags), in this module's layout."""
    tag_lines = "tags:\n" + "".join(f"    - {tag}\n" for tag in tags) if tags else ""
    return (f"title: {title}\nid: 7c0e4d11-1111-4e2a-8f00-{number:012d}\n{tag_lines}{HEADER}{PROCESS}"
            f"detection:\n    selection:\n        {selection}\n    condition: selection\n{extra}")


RULES = {
    "revoked_and_replacement.yml": simple_rule(2, "Gadget script host", "Image|endswith: '\\gadgetps.exe'",
                                               ("attack.execution", "attack.t1059.001", "attack.t1086")),
    # two rules sharing a title: the layer, the technique page and the CSV count both
    **{f"shared_title_{n}.yml": simple_rule(n, "Gadget management call", f"CommandLine|contains: 'gadget-wmi-{n}'",
                                            ("attack.execution", "attack.t1047")) for n in (3, 4)},
    "duplicate_key.yml": simple_rule(6, "Gadget with a repeated key", "Image|endswith: '\\gadgetdup.exe'", extra="level: low\n"),
    "untagged_tactic.yml": simple_rule(7, "Gadget without its tactic", "Image|endswith: '\\gadgetnotactic.exe'", ("attack.t1047",)),
    "fieldref.yml": """
        title: Gadget copied under another name
        id: 7c0e4d11-1111-4e2a-8f00-000000000001
        {header}{process}detection:
            selection:
                Image|endswith: '\\gadget.exe'
                CommandLine|contains: ' --quiet '
                ParentImage|fieldref: Image
            filter_same:
                Image|fieldref|endswith: OriginalFileName
            condition: selection and not filter_same
        """,
    "list_logsource.yml": """
        title: Gadget in two log sources
        id: 7c0e4d11-1111-4e2a-8f00-000000000005
        {header}logsource:
            product: windows
            category:
                - process_creation
                - ps_script
        detection:
            selection:
                - 'gadget-two-sources'
            condition: selection
        """,
    "hayabusa.yml": """
        title: Gadget service in Hayabusa's format
        id: 7c0e4d11-1111-4e2a-8f00-000000000008
        details: 'Svc: %ServiceName%'
        ruletype: Hayabusa
        {header}logsource:
            product: windows
            service: system
        detection:
            selection:
                Channel: System
                ServiceName: gadgetsvc
            condition: selection
        """,
    "broken.yml": "title: Gadget broken\ndetection:\n    selection: [unclosed <script>\n    condition: selection\n",
    "workflow.yml": "name: ci\non: push\njobs:\n    test:\n        runs-on: ubuntu-latest\n",
}


def rule_text(text: str) -> str:
    text = textwrap.dedent(text).lstrip("\n")
    return text.replace("{header}", HEADER).replace("{process}", PROCESS)


def write_rules(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, text in RULES.items():
        (folder / name).write_text(rule_text(text), encoding="utf-8")
    return folder


def build(root: Path, options: str = "") -> Path:
    write_rules(root / "rules")
    (root / "docs").mkdir()
    extra = "".join(f"      {line}\n" for line in options.splitlines())
    (root / "mkdocs.yml").write_text(
        "site_name: Findings\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules:\n        - rules\n" + extra,
        encoding="utf-8",
    )
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run([str(BIN / "mkdocs"), "build", "-f", str(root / "mkdocs.yml"), "-d", str(root / "site")],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return root / "site"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("findings"))


@pytest.fixture(scope="module")
def catalog_json(site) -> dict:
    return json.loads((site / "exports/catalog.json").read_text(encoding="utf-8"))


def at(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text(encoding="utf-8")


def page(site: Path, catalog_json: dict, title: str) -> str:
    (rule,) = [rule for rule in catalog_json["rules"] if rule["title"] == title][:1]
    return at(site, rule_path(rule["slug"]))


def csv_rows(site: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((site / TECHNIQUES_CSV).read_text(encoding="utf-8"))))


def whole_layer(site: Path) -> dict:
    return json.loads((site / NAVIGATOR / "all-rules.json").read_text(encoding="utf-8"))


def section(html: str, heading_id: str) -> str:
    start = html.index(f'id="{heading_id}"')
    end = html.find("<h2", start)
    return html[start:end if end > 0 else len(html)]


# --- 8. one set of findings -------------------------------------------------------------------------


def problems_page_counts(site: Path) -> Counter:
    html = (site / "problems/index.html").read_text(encoding="utf-8")
    table = html[html.index('class="sc-problem-codes"'):]
    table = table[: table.index("</table>")]
    return Counter({code: int(count.replace(",", "")) for code, count in re.findall(r"<td><a href=\"#code=[^\"]+\"><code>([^<]+)</code></a></td><td>\w+</td><td>([\d,]+)[^<]*(?:<small>[^<]*</small>)?</td>", table)})


def test_check_analyze_and_problems_page_report_the_same_findings(site, tmp_path, capsys):
    folder = write_rules(tmp_path / "rules")
    checked = run_check([folder], load_knowledge()).by_code()
    out = tmp_path / "analyze.json"
    assert main(["analyze", str(folder), "--json", str(out), "--quiet"]) == 0
    analyzed = Counter(problem["code"] for problem in json.loads(out.read_text(encoding="utf-8"))["problems"])
    shown = problems_page_counts(site)
    assert checked == analyzed == shown
    # the findings `check` alone used to add are now everyone's, as warnings with the tag to write
    for code in ("attack-revoked-technique", "attack-technique-tactic-not-tagged", "duplicate-key", "yaml", "not-a-rule"):
        assert shown[code] >= 1, code


def test_attack_findings_are_warnings_at_the_tag_with_a_hint(tmp_path):
    folder = write_rules(tmp_path / "rules")
    problems = build_catalog([folder], load_knowledge()).problems
    (revoked,) = [p for p in problems if p.code == "attack-revoked-technique"]
    assert (revoked.severity.value, revoked.line, revoked.column) == ("warning", 6, 7)
    assert revoked.message.endswith("tag attack.t1059.001 instead")
    (untagged,) = [p for p in problems if p.code == "attack-technique-tactic-not-tagged"]
    assert (untagged.severity.value, untagged.line) == ("warning", 4)
    assert untagged.message.endswith("add attack.execution")


def test_every_code_is_documented_with_its_severity():
    text = (REPO / "docs/analysis.md").read_text(encoding="utf-8")
    codes = {value for name, value in vars(Code).items() if name.isupper() and isinstance(value, str) and not name.endswith("PREFIX")}
    assert len(codes) > 40 and Code.ATTACK < codes
    reported = {Code.ATTACK_PREFIX + code if code in Code.ATTACK else code for code in codes}
    missing = sorted(code for code in reported if not re.search(rf"^\| `{re.escape(code)}` \| (error|warning|info)[^|]*\| (?:[^|]|\\\|)+ \| `", text, re.M))
    assert missing == []


# --- 6. findings on the page, notices, unreadable YAML ------------------------------------------------


def test_a_rule_with_an_error_is_published_with_it_at_the_top(site, catalog_json):
    html = page(site, catalog_json, "Gadget with a repeated key")
    banner = html.index("sc-banner-errors")
    assert banner < html.index('id="rule-body"')
    top = html[banner: html.index("</div>", banner)]
    assert "duplicate key &#39;level&#39; on lines 4 and 12" in top and "read with the value of line 12" in top
    assert "duplicate-key" in section(html, "problems")


def test_not_a_rule_is_a_notice_and_broken_yaml_is_listed(site):
    html = (site / "problems/index.html").read_text(encoding="utf-8")
    rows = re.findall(r'<tr class="sc-sev-(\w+)" data-code="[\w-]+"><td>.*?<code>([^<]+)</code>.*?\[([\w-]+)\]', html)
    assert ("info", "rules/workflow.yml:1:1", "not-a-rule") in rows
    assert [row for row in rows if row[2] == "yaml" and row[1].startswith("rules/broken.yml:")][0][0] == "error"
    assert "sc-excerpt" not in html  # the offending lines only in a preview build


def test_a_preview_shows_the_lines_around_a_yaml_error_escaped(tmp_path):
    folder = write_rules(tmp_path / "rules")
    catalog = build_catalog([folder])
    site = SiteBuilder(catalog, preview=True).build({})
    (problems,) = [p for p in site.browse if p.path == "problems/"]
    (row,) = [row for row in problems.context["problems"] if row["code"] == "yaml"]
    assert [line["number"] for line in row["excerpt"]] and any(line["here"] for line in row["excerpt"])
    html = Renderer().render("errors.html", "problems/", problems.context)
    assert "[unclosed &lt;script&gt;" in html and "<script>" not in html


# --- 1, 2. field references and edge spaces -----------------------------------------------------------


def test_fieldref_values_are_shown_as_fields_everywhere(site, catalog_json):
    html = page(site, catalog_json, "Gadget copied under another name")
    exclusions = section(html, "exclusions")
    assert re.search(r'<span class="sc-fieldref" title="fieldref: [^"]+">&rarr; field <code>OriginalFileName</code></span>', exclusions)
    indicators = section(html, "indicators")
    assert re.search(r'class="sc-fieldref"[^>]*>&rarr; field <code>Image</code>', indicators)
    (rule,) = [rule for rule in catalog_json["rules"] if rule["title"] == "Gadget copied under another name"]
    assert [i["field_reference"] for i in rule["analysis"]["indicators"] if i["value"] == "Image"] == [True]
    values = json.loads((site / SEARCH_INDEX).read_text(encoding="utf-8"))["values"]
    assert "\\gadget.exe" in values and "Image" not in values and "OriginalFileName" not in values


def test_edge_spaces_are_visible(site, catalog_json):
    html = page(site, catalog_json, "Gadget copied under another name")
    cell = re.search(r'<code class="sc-edge-spaces" title="([^"]+)">(.*?)</code>', section(html, "indicators"))
    assert cell and "leading or trailing spaces" in cell.group(1)
    assert cell.group(2) == '<span class="sc-space">&#9248;</span>--quiet<span class="sc-space">&#9248;</span>'


# --- 3, 4. ATT&CK: a technique once per rule; scores count rules ------------------------------------


def test_revoked_tag_and_its_replacement_are_one_technique(site, catalog_json):
    html = page(site, catalog_json, "Gadget script host")
    attack = html[html.index('class="sc-attack"'):html.index('id="rule-body"')]
    assert attack.count("T1059.001 PowerShell</a>") == 1
    assert "tagged as attack.t1059.001 and attack.t1086" in attack
    rows = [row for row in csv_rows(site) if row["title"] == "Gadget script host"]
    assert [(row["technique_id"], row["tag"], row["also_tags"]) for row in rows] == [("T1059.001", "attack.t1059.001", "attack.t1086")]
    (item,) = [t for t in whole_layer(site)["techniques"] if t["techniqueID"] == "T1059.001"]
    assert item["score"] == 1 and "attack.t1059.001 and attack.t1086" in item["comment"]


def test_layer_score_technique_page_and_csv_agree_on_rules_sharing_a_title(site):
    scores = {t["tactic"]: t["score"] for t in whole_layer(site)["techniques"] if t["techniqueID"] == "T1047"}
    assert scores == {"execution": 3}  # two rules share a title; the third tags T1047 without its tactic (derived)
    assert len([row for row in csv_rows(site) if row["technique_id"] == "T1047"]) == 3
    html = at(site, technique_path("T1047"))
    assert html.count("Gadget management call</a>") == 2 and "Gadget without its tactic</a>" in html


# --- 5. list log sources; 7. dialects -------------------------------------------------------------------


def test_a_list_log_source_lists_the_rule_under_each(site, catalog_json):
    for label in ("windows / process_creation", "windows / ps_script"):
        assert "Gadget in two log sources</a>" in at(site, item_path("logsources", label)), label
    html = page(site, catalog_json, "Gadget in two log sources")
    assert "windows / process_creation</a>" in html and "windows / ps_script</a>" in html


def test_the_breadcrumb_names_the_dialect(site, catalog_json):
    assert "&rsaquo; <span>Hayabusa</span></nav>" in page(site, catalog_json, "Gadget service in Hayabusa's format")
    assert "&rsaquo; <span>Sigma</span></nav>" in page(site, catalog_json, "Gadget script host")


def test_the_dialects_option_leaves_a_dialect_out(tmp_path):
    site = build(tmp_path, "dialects: [sigma]")
    data = json.loads((site / "exports/catalog.json").read_text(encoding="utf-8"))
    assert "Gadget service in Hayabusa's format" not in [rule["title"] for rule in data["rules"]]
    assert [p["severity"] for p in data["problems"] if p["code"] == "dialect-excluded"] == ["info"]


def test_each_document_of_a_collection_shows_its_own_findings(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    first = simple_rule(11, "Gadget first of two", "Image|endswith: '\\\\one.exe'", ("attack.t1047",))
    second = simple_rule(12, "Gadget second of two", "Image|endswith: '\\\\two.exe'", ("attack.t1086", "attack.execution"))
    (folder / "two.yml").write_text(first + "---\n" + second, encoding="utf-8")
    site = SiteBuilder(build_catalog([folder], load_knowledge())).build({})
    codes = {page.title: [p["code"] for p in page.data()["problems"]] for page in site.pages if page.template == "rule.html"}
    assert codes == {"Gadget first of two": ["attack-technique-tactic-not-tagged"], "Gadget second of two": ["attack-revoked-technique"]}
    banners = {page.title: page.data()["banners"][0]["kind"] for page in site.pages if page.template == "rule.html"}
    assert banners == {"Gadget first of two": "warnings", "Gadget second of two": "warnings"}
