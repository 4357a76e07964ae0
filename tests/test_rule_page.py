"""The rule page (issue 11): facts header and actions, stage anchors, the condition tree, folding,
indicators ordered by corpus count, the served rule file, and the size of a very large rule's page.

Every rule here is written for these tests. The SigmaHQ page sizes are checked in test_site_corpus.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from catalog.conditions import parse_condition
from catalog.site.condition_tree import condition_tree, has_alternatives, stage_anchor
from catalog.site.render import make_environment
from linkcheck import anchors, article_text, tables
from test_site import run_build

OR_RULE = r"""title: Office macro or script dropper
id: 5b0d3f1e-7a52-4c1e-9f0b-1a2b3c4d5e01
status: test
author: Test Author (Org), Second Author
date: 2024-01-02
modified: 2024-03-04
level: medium
logsource:
    product: windows
    category: process_creation
detection:
    word:
        ParentImage|endswith: '\winword.exe'
    word_ext:
        CommandLine|contains: '.docx'
    excel:
        ParentImage|endswith: '\excel.exe'
    excel_ext:
        CommandLine|contains: '.xlsx'
    filter_main_system:
        User: 'SYSTEM'
    filter_main_updater:
        Image|startswith: 'C:\Program Files\Updater\'
    condition: ((word and not word_ext) or (excel and not excel_ext)) and not 1 of filter_main_*
"""

SHARING_RULE = r"""title: Shadow copies deleted
id: 5b0d3f1e-7a52-4c1e-9f0b-1a2b3c4d5e02
status: stable
level: high
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        CommandLine|contains:
            - 'quiet-only-here'
            - 'vssadmin delete shadows'
    condition: selection
"""

SHARING_RULE_TOO = SHARING_RULE.replace("5e02", "5e03").replace("Shadow copies deleted", "Shadow copies deleted again").replace(
    "quiet-only-here", "another-only-here")

LARGE_COUNT = 3000


def large_rule() -> str:
    """A rule with thousands of hashes, like a vulnerable-driver list."""
    hashes = "".join(f"            - 'SHA256={hashlib.sha256(str(n).encode()).hexdigest()}'\n" for n in range(LARGE_COUNT))
    return ("title: Many driver hashes\nid: 5b0d3f1e-7a52-4c1e-9f0b-1a2b3c4d5e04\nstatus: test\nlevel: high\n"
            "logsource:\n    product: windows\n    category: driver_load\ndetection:\n    selection:\n        Hashes|contains:\n"
            + hashes + "    condition: selection\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rulepage")
    (root / "rules").mkdir()
    for name, text in {"or.yml": OR_RULE, "share1.yml": SHARING_RULE, "share2.yml": SHARING_RULE_TOO, "large.yml": large_rule()}.items():
        (root / "rules" / name).write_text(text, encoding="utf-8")
    (root / "docs").mkdir()
    (root / "mkdocs.yml").write_text(
        "site_name: Test catalog\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules:\n"
        "        - path: rules\n          source_url: https://gitlab.example.com/team/rules/-/blob/main/rules\n",
        encoding="utf-8",
    )
    result = run_build("mkdocs", root / "mkdocs.yml", root / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    return root / "site"


def page(site: Path, number: str) -> str:
    return (site / f"rules/5b0d3f1e-7a52-4c1e-9f0b-1a2b3c4d5e{number}/index.html").read_text(encoding="utf-8")


# --- the condition tree, from the parsed condition ------------------------------------------------


def test_condition_tree_shows_the_alternatives_and_numbers_leaves_like_the_stages():
    names = ["word", "word_ext", "excel", "excel_ext", "filter_main_system", "filter_main_updater"]
    condition = parse_condition("((word and not word_ext) or (excel and not excel_ext)) and not 1 of filter_main_*", names)
    tree = condition_tree(condition)

    def shape(node):
        if node["op"] is None:
            return node["name"] + f"#{node['anchor']}"
        return [" ".join(filter(None, (node["op"], node["target"]))), *map(shape, node["children"])]

    assert shape(tree) == [
        "and",
        ["or", ["and", "word#stage-1", ["not", "word_ext#stage-2"]], ["and", "excel#stage-3", ["not", "excel_ext#stage-4"]]],
        ["not", ["1 of filter_main_*", "filter_main_system#stage-5", "filter_main_updater#stage-6"]],
    ]
    assert has_alternatives(condition.expression)
    assert not has_alternatives(parse_condition("a and not b", ["a", "b"]).expression)
    assert not has_alternatives(parse_condition("1 of a*", ["a1"]).expression)  # one member: no alternative
    assert stage_anchor(0, 0) == "stage-0" and stage_anchor(1, 2) == "condition-2-stage-2"


def test_nested_ands_read_as_one():
    tree = condition_tree(parse_condition("a and (b and (c or d))", ["a", "b", "c", "d"]))
    assert tree["op"] == "and" and [child.get("name") for child in tree["children"]] == ["a", "b", None]
    assert [leaf["number"] for leaf in tree["children"][2]["children"]] == [3, 4]


def test_values_break_after_separators_and_stay_escaped():
    breakable = make_environment().filters["breakable"]
    assert str(breakable(r"C:\Windows/x.exe<b>")) == r"C:\<wbr>Windows/<wbr>x.<wbr>exe&lt;b&gt;"



def test_template_output_is_escaped_as_markupsafe_escapes_it():
    """Templates write `{{ }}` through `escaped` (render.py), not markupsafe's `escape`: the same text."""
    from markupsafe import Markup, escape

    from catalog.site.render import escaped

    class Html:
        def __html__(self) -> str:
            return "<i>as it says</i>"

    for value in ["<script>alert('x')</script> & \"q\"", "plain", "", 12, 1.5, None, Markup("<b>kept</b>"), Html()]:
        assert escaped(value) == str(escape(value))
    env = make_environment()
    template = env.from_string("{% macro m(x) %}<b>{{ x }}</b>{% endmacro %}{{ v }}|{{ m(v) }}|{% set s %}{{ v }}{% endset %}{{ s }}")
    assert "from catalog.site.render import escaped" in env.compile("{{ v }}", raw=True)
    assert template.render(v="<&'\">") == "&lt;&amp;&#39;&#34;&gt;|<b>&lt;&amp;&#39;&#34;&gt;</b>|&lt;&amp;&#39;&#34;&gt;"

def test_macros_called_directly_render_as_jinja_calls_them():
    """render._Context calls a macro given every argument by position itself; any other call
    (defaults, keywords, caller, varargs) goes through Jinja. Both must give Jinja's output."""
    import jinja2

    source = (
        "{% macro m(a, b=2) %}<i>{{ a }}{{ b }}</i>{% endmacro %}"
        "{% macro w() %}[{{ caller() }}]{% endmacro %}"
        "{% macro v() %}{{ varargs|join(',') }}{% endmacro %}"
        "{% for x in xs %}{{ m(x, '<b>') }}|{{ m(x) }}|{{ m(a=x, b=3) }}|{% call w() %}{{ x }}{% endcall %}|{{ v(x, x) }};{% endfor %}"
    )
    plain = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    ours = make_environment()
    expected = "<i>&lt;x&gt;&lt;b&gt;</i>|<i>&lt;x&gt;2</i>|<i>&lt;x&gt;3</i>|[&lt;x&gt;]|&lt;x&gt;,&lt;x&gt;;"
    assert plain.from_string(source).render(xs=["<x>"]) == expected
    assert ours.from_string(source).render(xs=["<x>"]) == expected
    with pytest.raises(TypeError, match="takes not more than"):
        ours.from_string("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}").render()


# --- the built pages --------------------------------------------------------------------------------


def test_stage_anchors_match_their_numbers_and_the_tree_links_them(site):
    html = page(site, "01")
    for number in range(7):
        assert f'id="stage-{number}"' in html
    stage_ids = re.findall(r'<details class="sc-stage" id="(stage-\d+)"', html)
    headings = re.findall(r"<h3[^>]*>Stage (\d+):", html)
    assert stage_ids == [f"stage-{n}" for n in headings]
    tree = html.split('class="sc-tree"', 1)[1].split("</div>", 1)[0]
    assert [href for href, _ in anchors(html, "sc-tree")] == [f"#stage-{n}" for n in range(1, 7)]
    assert re.findall(r'class="sc-op">([^<]+)<', tree) == ["and", "or", "and", "not", "and", "not", "not", "1 of"]
    assert 'class="sc-tree"' not in page(site, "02")  # no alternatives: no tree


def test_facts_header_with_badges_dates_and_host_actions(site):
    html = page(site, "01")
    facts = html.split('class="sc-facts"', 1)[1].split('<h2', 1)[0]
    assert "sc-level-medium" in facts and ">medium<" in facts and ">test<" in facts
    assert ">windows / process_creation<" in facts
    assert "Test Author (Org)" in facts and "Second Author" in facts
    assert "2024-01-02" in facts and "2024-03-04" in facts
    links = dict((text, href) for href, text in anchors(html, "sc-actions"))
    assert links["View source"] == "https://gitlab.example.com/team/rules/-/blob/main/rules/or.yml"
    assert links["Edit"] == "https://gitlab.example.com/team/rules/-/edit/main/rules/or.yml"
    # the header comes after the description and before the first section
    text = article_text(html)
    assert text.index("Office macro or script dropper") < text.index("medium") < text.index("MITRE ATT&CK coverage")


def test_indicators_most_shared_first_and_specific_ones_folded(site):
    html = page(site, "02")
    shared, specific = tables(html, "sc-indicators")
    assert shared[1][2:] == ["vssadmin delete shadows", "2"]
    assert specific[1][2:] == ["quiet-only-here", "1"]
    assert "1 indicator specific to this rule" in article_text(html)
    assert "Blank or 1 shows that the indicator is specific to this rule." in article_text(html)


def test_indicator_page_is_titled_with_its_field_kind_and_value(site):
    html = page(site, "02")
    (href,) = [href for href, text in anchors(html, "sc-indicators") if text == "2"]
    indicator = (site / "rules/5b0d3f1e-7a52-4c1e-9f0b-1a2b3c4d5e02" / href / "index.html").resolve().read_text(encoding="utf-8")
    title = re.search(r"<h1[^>]*>(.*?)</h1>", indicator).group(1)
    assert re.sub(r"<[^>]+>", "", title) == "CommandLine contains vssadmin delete shadows"


def test_exclusions_explained_in_plain_words(site):
    text = article_text(page(site, "01"))
    assert text.index("Top-level NOT(...) conjuncts") < text.index("In plain words: the rule does not fire")


def test_a_very_large_rule_is_folded_and_small(site):
    html = page(site, "04")
    assert len(html.encode("utf-8")) < 200_000
    assert f"{LARGE_COUNT:,} indicators specific to this rule" in html
    assert '<details class="sc-stage" id="stage-1">' in html  # folded: no `open`
    assert '<details class="sc-stage" id="stage-0" open>' in html


def test_rule_pages_show_their_table_of_contents_and_other_pages_none(site):
    html = page(site, "01")
    sidebar = re.search(r'<div class="md-sidebar md-sidebar--secondary"[^>]*>', html).group(0)
    assert "hidden" not in sidebar
    toc = html.split('data-md-component="toc"', 1)[1].split("</nav>\n", 1)[0]
    hrefs = re.findall(r'href="(#[^"]+)"', toc)
    assert hrefs[:3] == ["#attack", "#rule-body", "#stages"]
    assert "#stage-0-title" in hrefs and "#exclusions" in hrefs and "#indicators" in hrefs and "#details" in hrefs
    for href in hrefs:  # every entry is a heading of the page
        assert f'id="{href[1:]}"' in html
    assert "SIGMACATALOG" not in html
    technique = next(site.glob("indicators/*/index.html")).read_text(encoding="utf-8")  # a page of ours, not a rule
    assert re.search(r'<div class="md-sidebar md-sidebar--secondary"[^>]*hidden>', technique)
    assert "SIGMACATALOG" not in technique


def test_pages_made_by_the_thousand_are_ascii_for_rules_written_in_ascii(site):
    """Their templates write their own characters past ASCII as references (_macros.html): one
    such character would make Python hold every rule page at two bytes a character."""
    pages = [path for family in ("rules", "indicators", "attack", "tags", "authors")
             for path in (site / family).rglob("index.html")]
    assert len(pages) > 10
    assert [str(path.relative_to(site)) for path in pages if not path.read_bytes().isascii()] == []
