"""Bounded at any size (issue 10): linear highlighting, what one rule may add to the site, and
rule pages that cut long bodies and lists at named limits (catalog.bounds) and link the whole."""

from __future__ import annotations

import re
import time
from html import unescape
from pathlib import Path

import pytest

from catalog import bounds
from catalog.bounds import LISTING_TITLE, OWN_TAG_PAGES, RULE_BODY, STAGE_BODY, TABLE_ROWS, cut_text
from catalog.site.yaml_html import highlight_yaml
from linkcheck import anchors
from test_site import built_site

SHARED_VALUE = "shared-by-two-rules.example.org"


def rule(title: str, body: str, tags: list[str] = ()) -> str:
    tag_lines = "".join(f"    - {tag}\n" for tag in tags)
    return f"title: {title}\nstatus: test\nlogsource:\n    product: windows\n" + (f"tags:\n{tag_lines}" if tags else "") + body


def keyword_list(prefix: str, count: int, indent: str = "        ") -> str:
    return "".join(f"{indent}- '{prefix}-{number:05d}-{'v' * 30}'\n" for number in range(count))


LONG = rule("Long lists", "detection:\n    selection:\n        Image|endswith:\n" + keyword_list("value", TABLE_ROWS + 10, "            ")
            + f"            - '{SHARED_VALUE}'\n    filter:\n        User:\n" + keyword_list("user", TABLE_ROWS + 7, "            ")
            + "    condition: selection and not filter\nlevel: low\n", ["custom.shared-tag"])
OTHER = rule("Other " + "t" * 1000, f"detection:\n    selection:\n        Image|endswith: '{SHARED_VALUE}'\n        CommandLine: one-of-a-kind\n"
             "    condition: selection\nlevel: low\n", ["custom.shared-tag"] + [f"custom.own-{n:03d}" for n in range(OWN_TAG_PAGES + 3)])
BIG_VALUES = RULE_BODY // 40 + 100
BIG = rule("Big body", "detection:\n    keywords:\n" + keyword_list("big", BIG_VALUES) + "    condition: keywords\nlevel: low\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return built_site(tmp_path_factory.mktemp("bounds"), {"long.yml": LONG, "other.yml": OTHER, "big.yml": BIG})


def page(site: Path, slug: str) -> str:
    return (site / "rules" / slug / "index.html").read_text(encoding="utf-8")


# --- the highlighter: linear in the line (hostile: explicit time limit) -----------------------


@pytest.mark.parametrize("line", [
    "    - abc" + " " * 200_000 + "def",  # a plain key was searched for from every position of the run
    "a" + " " * 200_000 + "b",
    "key" + " " * 200_000 + ": value",
    "- '" + " " * 200_000,
    '"k' + " " * 200_000 + '": v',
    "key: " + "a" * 200_000 + " #",  # the one-match shapes: a value that turns out to hold a comment
    "- " * 100_000 + "x#",
    " " * 200_000 + "#",
])
def test_highlighting_is_linear_in_the_line_length(line):
    started = time.perf_counter()
    html = highlight_yaml(line + "\n" + line)
    assert time.perf_counter() - started < 2.0  # 52 s before (quadratic)
    assert unescape(re.sub(r"<[^>]*>", "", str(html))) == line + "\n" + line


def test_highlighting_finds_keys_as_before():
    assert str(highlight_yaml("Image|endswith:  x")) == '<span class="nt">Image|endswith</span>:  x'
    assert str(highlight_yaml("url: http://a:b")) == '<span class="nt">url</span>: http://a:b'
    assert str(highlight_yaml("a # b: c")) == 'a <span class="c1"># b: c</span>'  # a comment before the colon: no key
    assert str(highlight_yaml("'q k' : 1")) == '<span class="nt">&#39;q k&#39;</span> : <span class="m">1</span>'
    assert str(highlight_yaml("- -x: y")) == '- <span class="nt">-x</span>: y'


def test_the_one_match_shapes_highlight_as_the_general_path():
    """`_highlight_line` takes the common line shapes in one match: for every line it takes, the
    same HTML as the general path (keys, quoting, numbers, constants, comments, blocks, flow)."""
    from itertools import product

    from catalog.site.yaml_html import _SIMPLE_LINE, _general_line, _highlight_line

    indents = ["", "  ", "\t "]
    dashes = ["", "- ", "- - ", "-", "-\t"]
    keys = ["", "key", "Image|endswith", "a.b-c", "_x", "-x", "'q'", '"q"', "k:", "k#", "ü"]
    colons = [":", ": ", ":  ", " :", ":\t", ""]
    values = ["", "x", "x  ", "'a'", "'a''b'", "'a' b", '"a"', '"a\\"b"', "12", "-5", "0x1F", "1e3", "true", "null ", "~",
              "a: b", "a:b", "b:", "#c", "x #c", "x#c", "|", ">-", "|2 #c", "[a, b]", "{a: b}", "&a x", "*a", "!t x",
              "<b>&amp;", "'open", '"open', "C:\\x y", "- x", "?", ",", "%", "@", "`", "\x0bv", "a\rb"]
    taken = 0
    for indent, dash, key, colon, value in product(indents, dashes, keys, colons, values):
        line = f"{indent}{dash}{key}{colon}{value}"
        assert _highlight_line(line) == _general_line(line), line
        taken += _SIMPLE_LINE.match(line) is not None
    assert taken > 5_000  # the one-match path was tried on many of them


# --- what one rule may add -------------------------------------------------------------------


def test_own_tags_past_the_cap_get_no_page_and_a_warning(site):
    tags = site / "tags"
    own = sorted(path.name for path in tags.iterdir() if path.name.startswith("custom-own"))
    assert len(own) == OWN_TAG_PAGES
    assert [path.name for path in tags.glob("custom-shared-tag*")]  # shared tags are never capped
    problems = (site / "problems" / "index.html").read_text(encoding="utf-8")
    assert "page-cap" in problems and f"{OWN_TAG_PAGES + 3:,} tags that no other rule has" in problems
    slug = next(path.parent.name for path in (site / "rules").glob("other-*/index.html"))
    linked = [text for _, text in anchors(page(site, slug), "sc-details") if text.startswith("custom.own-")]
    assert len(linked) == OWN_TAG_PAGES  # the others are shown, not linked


def test_page_caps_count_only_values_no_other_rule_has(tmp_path):
    from catalog.pipeline import build_catalog

    (tmp_path / "a.yml").write_text(OTHER, encoding="utf-8")
    (tmp_path / "b.yml").write_text(OTHER.replace("title: Other", "title: Twin"), encoding="utf-8")
    caps = build_catalog([str(tmp_path)]).page_caps  # the same tags in two rules: none of them is own
    assert caps.tags == set() and caps.problems == []
    assert bounds.normal(" Custom.X ") == "custom.x"


def test_listings_cut_long_titles_the_rule_page_keeps_them(site):
    listing = (site / "rules" / "index.html").read_text(encoding="utf-8")
    assert "Other " + "t" * 1000 not in listing
    assert "Other " + "t" * (LISTING_TITLE - 7) + "…" in listing
    slug = next(path.parent.name for path in (site / "rules").glob("other-*/index.html"))
    assert f'<h1 id="title">Other {"t" * 1000}</h1>' in page(site, slug)


# --- rule pages: long lists and bodies cut, the whole linked -----------------------------------


def test_indicator_and_exclusion_tables_are_cut_and_linked(site):
    html = page(site, "long-lists")
    assert len(anchors(html, "sc-indicators")) <= 1  # only the shared indicator links anywhere
    indicators = html[html.index('id="indicators"'):html.index('id="details"')].replace("<wbr>", "")  # (values break at dots)
    exclusions = html[html.index('id="exclusions"'):html.index('id="indicators"')]
    assert indicators.count("<code>value-") + indicators.count(SHARED_VALUE) == TABLE_ROWS
    assert exclusions.count("<code>user-") == TABLE_ROWS
    assert "&hellip; and 11 more indicators: <a href=\"#rule-body\">the whole rule</a>" in html
    assert "&hellip; and 7 more values: <a href=\"#rule-body\">the whole rule</a>" in html


def test_stage_bodies_are_cut_the_rule_body_stays_whole(site, tmp_path):
    html = page(site, "long-lists")
    assert LONG.count("\n") > 2 * TABLE_ROWS and len(LONG) > STAGE_BODY
    assert "more lines: <a href=\"#rule-body\">the whole rule</a>" in html
    for number in range(TABLE_ROWS + 10):
        assert f"value-{number:05d}" in html  # every value is in the rule body


def test_a_body_past_the_limit_is_cut_and_the_file_served(site):
    html = page(site, "big-body")
    assert len(html.encode()) < 1_000_000
    served = site / "rules" / "big-body" / "rule.yml"
    assert served.read_text(encoding="utf-8") == BIG
    assert 'more lines: <a href="../../rules/big-body/rule.yml">the whole rule</a>' in html
    assert f"big-{BIG_VALUES - 1:05d}" not in html


def test_indicator_pages_only_for_indicators_of_two_rules(site):
    pages = [path for path in (site / "indicators").rglob("index.html") if path.parent != site / "indicators"]
    assert len(pages) == 1
    assert SHARED_VALUE in pages[0].read_text(encoding="utf-8")


def test_cut_text_cuts_at_a_line_end():
    assert cut_text("a\nb\nc\n", 10) == ("a\nb\nc\n", 0)
    assert cut_text("aa\nbb\ncc\n", 5) == ("aa", 2)
    assert cut_text("aa\nbb\ncc", 5) == ("aa", 2)
    assert cut_text("x" * 10, 4) == ("xxxx", 1)


# --- catalog.json as a stream -------------------------------------------------------------------


def test_catalog_json_stream_is_the_whole_document(tmp_path):
    import io

    from catalog.jsonexport import catalog_to_json
    from catalog.pipeline import build_catalog
    from catalog.site.exports import write_catalog_json
    from catalog.site.render import html_safe_json

    for name, text in (("long.yml", LONG), ("other.yml", OTHER)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    catalog = build_catalog([str(tmp_path)])
    out = io.BytesIO()
    write_catalog_json(out, catalog, lambda root, path: f"rules/{path}", lambda path: "shown", directory_urls=True)
    whole = catalog_to_json(catalog)
    for rule in whole["rules"]:
        rule["source"]["file"], rule["source"]["root"] = f"rules/{rule['source']['path']}", "rules"
        rule["page"] = f"rules/{rule['slug']}/"
    for item in whole["problems"] + whole["files"]:
        item["path"] = "shown"
    assert out.getvalue() == html_safe_json(whole)


def test_problems_page_lists_a_bounded_number_of_findings(tmp_path, monkeypatch):
    from catalog.pipeline import build_catalog
    from catalog.site import browse_pages
    from catalog.site.model import Site, SiteData
    from catalog.site.render import Renderer

    for number in range(3):  # an unknown status each
        (tmp_path / f"odd{number}.yml").write_text(LONG.replace("status: test", f"status: odd{number}"), encoding="utf-8")
    catalog = build_catalog([str(tmp_path)])
    assert len(catalog.problems) >= 3
    monkeypatch.setattr(browse_pages, "PROBLEM_ROWS", 1)
    site = Site()
    browse_pages.add_problem_page(SiteData(catalog), site)
    (page,) = site.browse
    html = Renderer().render(page.template, page.path, page.context)
    assert len(page.context["problems"]) == 1
    assert f"… and {len(catalog.problems) - 1} more: every finding is in <a href=\"../exports/catalog.json\">catalog.json</a>" in html


def test_a_long_query_is_cut_on_the_page_and_served_whole(tmp_path):
    """A rule of thousands of values converts to a query of megabytes: the page shows its start."""
    from catalog.bounds import QUERY_TEXT
    from catalog.conversions import Conversion
    from catalog.pipeline import build_catalog
    from catalog.site.pages import SiteBuilder
    from catalog.site.render import Renderer

    (tmp_path / "long.yml").write_text(LONG, encoding="utf-8")
    catalog = build_catalog([str(tmp_path)])
    (entry,) = catalog.entries
    whole = "Hashes=" + " OR Hashes=".join(f"<{n:06d}>" for n in range(5_000))
    conversions = {entry.slug: [Conversion("splunk", "Splunk SPL", "splunk 2.1.0", "none", (whole, "short"))]}
    site = SiteBuilder(catalog, conversions=conversions).build({})
    files = {path: text for path, text in site.files.items() if "/query-" in path}
    assert files == {f"rules/{entry.slug}/query-splunk-1.txt": whole}  # the short one stays on the page only
    (page,) = [page for page in site.pages if page.path == f"rules/{entry.slug}/"]
    html = Renderer().render(page.template, page.path, page.data())
    assert "&lt;000000&gt;" in html and "&lt;004999&gt;" not in html  # escaped, and cut
    assert f"&hellip; and {len(whole) - QUERY_TEXT:,} more characters: <a href=\"../../rules/{entry.slug}/query-splunk-1.txt\" type=\"text/plain\">the whole query</a>" in html
    assert "<code>short</code>" in html


def test_json_files_hold_json_dumps_bytes_with_no_markup_characters():
    """html_safe_json writes compact JSON with orjson: the bytes json.dumps writes; what orjson
    refuses (integers past 64 bits, keys that are no strings) json.dumps writes."""
    import json

    from catalog.site.render import html_safe_json

    def expected(data):
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode("utf-8")

    data = {"title": "</script><script>alert(1)</script> & co", "text": "é €😀\u2028\u2029\x7f",
            "controls": "".join(map(chr, range(32))) + '"\\/', "numbers": [0, -1, 2**63 - 1, 1.5, 0.1, True, None],
            "nested": {"tuple": (1, "two"), "empty": [], "map": {}}}
    assert html_safe_json(data) == expected(data)
    assert b"<" not in html_safe_json(data) and b"&" not in html_safe_json(data)
    refused_by_orjson = {"big": 2**70, 7: "a key that is a number"}
    assert html_safe_json(refused_by_orjson) == expected(refused_by_orjson)
    assert json.loads(html_safe_json(refused_by_orjson)) == {"big": 2**70, "7": "a key that is a number"}
