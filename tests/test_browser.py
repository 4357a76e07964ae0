"""The built site in a real browser: Playwright for Python driving Debian's Chromium.

The site of this repository's rules is built once and served over http on 127.0.0.1. Skipped where
there is no Chromium, unless CI is set (then a missing browser is a failure).
Install: `apt-get install chromium` and `pip install playwright` (no `playwright install`).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE_SLUG = "wmi-module-loaded-by-suspicious-process"
CHROMIUM = next((path for path in ("/usr/bin/chromium", shutil.which("chromium") or "") if path and Path(path).exists()), None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


def _require_browser():
    problem = None
    if CHROMIUM is None:
        problem = "no Chromium at /usr/bin/chromium (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Playwright for Python is not installed (pip install playwright)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem + " — required in CI")
        pytest.skip(problem)


def _serve(site: Path):
    """A quiet http server of `site` on a free port of 127.0.0.1, in a thread."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require_browser()
    site = tmp_path_factory.mktemp("browser") / "site"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(site)],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    httpd, thread = _serve(site)
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    thread.join(5)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.rstrip("/"))
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def _rows(page, css: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"{css} tr", "rows => rows.map(r => Array.from(r.querySelectorAll('th,td')).map(c => c.innerText.trim()))"
    )


def test_reference_rule_page(page):
    page.goto(f"rules/{REFERENCE_SLUG}/")
    assert page.locator("article h1").first.inner_text() == "WMI module loaded by suspicious process"
    assert page.locator(".sc-breadcrumb").inner_text() == "Detection rules › Sigma"
    headings = page.locator("article h2").all_inner_texts()
    assert headings[:5] == ["MITRE ATT&CK coverage", "Rule body", "Stages and Predicates", "Exclusions", "Indicators"]
    # then the queries (with the conversions extra), similar rules, details (issue 12)
    assert [h for h in headings[5:] if h != "Queries"][:2] == ["Similar rules", "Details"]
    stages = page.locator("article h3[id^='stage-']").all_inner_texts()
    assert stages == ["Stage 0: condition", "Stage 1: selection", "Stage 2: not filter"]
    assert _rows(page, ".sc-attack")[1] == ["Execution", "T1047 Windows Management Instrumentation"]
    assert _rows(page, ".sc-exclusions")[1:] == [
        ["Image", "ends_with", "\\svchost.exe"], ["Image", "ends_with", "\\wmiapsrv.exe"], ["Image", "ends_with", "\\wmiprvse.exe"],
    ]
    indicators = _rows(page, ".sc-indicators")
    assert indicators[0] == ["Field", "Kind", "Values", "Corpus"]
    assert sum(1 for row in indicators if row[0] == "ImageLoaded") == 9
    assert ["EventID", "equals", "7"] in [row[:3] for row in indicators]
    # the rule body is the file, and the copy button copies exactly it
    raw = (REPO / "rules/windows/image_load/wmi-module-loaded-by-suspicious-process.yml").read_text(encoding="utf-8")
    assert page.locator(".sc-code pre code").text_content() == raw
    page.locator(".sc-code .sc-copy").click()
    page.wait_for_function("document.querySelector('.sc-code .sc-copy').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == raw


def test_search_by_indicator_value(page):
    page.goto("find/")
    box = page.locator(".sc-search-page .sc-search-input")
    box.click()
    box.fill("wbemcomn.dll")
    result = page.locator(".sc-search-page .sc-search-results a", has_text="WMI module loaded by suspicious process")
    result.wait_for(timeout=10_000)
    assert "wbemcomn.dll" in page.locator(".sc-search-page .sc-search-results li").first.inner_text()
    result.click()
    page.wait_for_url(f"**/rules/{REFERENCE_SLUG}/")
    assert page.locator("article h1").first.inner_text() == "WMI module loaded by suspicious process"


def test_search_from_the_header_by_technique_and_id(page):
    page.goto("attack/")
    box = page.locator(".md-header .sc-search-input")
    box.fill("T1047")
    page.locator(".md-header .sc-search-results a", has_text="WMI module loaded by suspicious process").wait_for(timeout=10_000)
    box.fill("")
    # by rule id: take one from the search index the page loaded
    rule_id, title = page.evaluate(
        "fetch(new URL('assets/sigma-catalog/search-index.json', location.origin + '/').href).then(r => r.json())"
        ".then(d => { const r = d.rules.find(r => r[2]); return [r[2], r[1]]; })"
    )
    box.fill(rule_id)
    page.locator(".md-header .sc-search-results a", has_text=title).wait_for(timeout=10_000)
    assert page.locator(".md-header .sc-search-results a").first.inner_text() == title  # an exact id ranks first
    box.press("Enter")  # opens the Search page with the query, not the first hit
    page.wait_for_url("**/find/?q=*")
    page.locator(".sc-search-page .sc-search-results a", has_text=title).wait_for(timeout=10_000)
    assert page.locator(".sc-search-page .sc-search-input").input_value() == rule_id


def test_corpus_count_link_leads_to_the_sharing_rules(page, server):
    import json
    import urllib.request

    with urllib.request.urlopen(server + "exports/catalog.json") as response:
        catalog = json.load(response)
    rule, indicator = next(
        (rule, indicator)
        for rule in catalog["rules"]
        for indicator in rule.get("analysis", {}).get("indicators", [])
        if indicator["corpus_count"] > 1
    )
    page.goto(f"rules/{rule['slug']}/")
    link = page.locator(".sc-indicators a", has_text=str(indicator["corpus_count"])).first
    link.click()
    page.wait_for_url("**/indicators/**")
    listed = page.locator(".sc-rules td a").all_inner_texts()
    assert rule["title"] in listed
    assert len(listed) == indicator["corpus_count"]
    assert page.locator(".sc-indicator td").nth(2).inner_text() != ""


def test_query_tabs_switch(page):
    page.goto(f"rules/{REFERENCE_SLUG}/")
    if page.locator("[data-sc-tabs]").count() == 0:
        pytest.skip("built without the conversions extra")
    assert page.locator("#query-splunk").is_visible() and not page.locator("#query-kusto").is_visible()
    page.locator("#query-tab-kusto").click()
    assert page.locator("#query-kusto").is_visible() and not page.locator("#query-splunk").is_visible()
    assert page.locator("#query-tab-kusto").get_attribute("aria-selected") == "true"
    assert "EventID == 7" in page.locator("#query-kusto pre").inner_text()


def test_problems_filter_by_code_also_from_the_coverage_page(page):
    page.goto("coverage/")
    if page.locator("#conversions").count() == 0:
        pytest.skip("built without the conversions extra")
    page.locator("a[href$='problems/#code=no-query-kusto']").first.click()
    page.wait_for_url("**/problems/#code=no-query-kusto")
    rows = page.locator("#findings tbody tr")
    visible = [row for row in rows.all() if row.is_visible()]
    assert visible and all(row.get_attribute("data-code") == "no-query-kusto" for row in visible)
    assert len(visible) < rows.count()
    notice = page.locator(".sc-problem-filter")
    assert f"{len(visible)} finding" in notice.inner_text() and "no-query-kusto" in notice.inner_text()
    listed = page.locator(".sc-problem-codes a[href='#code=no-query-kusto']").locator("xpath=../../td[3]").inner_text()
    assert listed.split()[0] == str(len(visible))  # as many as the table of codes counts
    assert page.locator(".sc-problem-codes a[aria-current]").get_attribute("href") == "#code=no-query-kusto"
    notice.locator("a").click()  # every finding again
    notice.wait_for(state="hidden")  # the page applies the new address on its hashchange event, after the click
    assert all(row.is_visible() for row in rows.all())
    page.locator(".sc-problem-codes a[href='#code=legacy-aggregation']").click()
    page.wait_for_function("document.querySelector('.sc-problem-codes a[aria-current]')?.getAttribute('href') === '#code=legacy-aggregation'")
    assert [row.get_attribute("data-code") for row in rows.all() if row.is_visible()] == ["legacy-aggregation"]


#: For each Copy button of a code block: how far it reaches into the code's text area (px; 0 or less:
#: it covers none of the text), the text area being the code element less its padding.
_COPY_OVERLAP = """() => Array.from(document.querySelectorAll('.sc-copy')).filter(b => b.offsetParent !== null).map(button => {
  const code = button.parentElement.querySelector('pre code'), style = getComputedStyle(code);
  const box = code.getBoundingClientRect(), own = button.getBoundingClientRect();
  const text = {top: box.top + parseFloat(style.paddingTop), right: box.right - parseFloat(style.paddingRight)};
  return Math.min(own.bottom - text.top, text.right - own.left);
})"""


@pytest.mark.parametrize("width", [1400, 390])
def test_copy_buttons_cover_no_code_text(browser, server, width):
    context = browser.new_context(viewport={"width": width, "height": 1000})
    tab = context.new_page()
    tab.goto(server + f"rules/{REFERENCE_SLUG}/")
    overlaps = tab.evaluate(_COPY_OVERLAP)
    context.close()
    assert overlaps and all(overlap <= 0 for overlap in overlaps), overlaps


# --- the rule page at desktop and phone widths, light and dark (issue 11) ---------------------------

SCREENSHOTS = REPO / "test-output"
SIZES = [(1400, "light"), (1400, "dark"), (390, "light"), (390, "dark")]
DRIVER_RULE = Path(__file__).resolve().parents[2] / "shared/corpora/sigmahq/rules/windows/driver_load/driver_load_win_vuln_drivers.yml"


@pytest.fixture(scope="module")
def large_server(tmp_path_factory):
    """Our own large and or-condition rules (test_rule_page), and SigmaHQ's driver rule where the corpus is."""
    _require_browser()
    from test_rule_page import OR_RULE, large_rule

    root = tmp_path_factory.mktemp("large")
    (root / "rules").mkdir()
    (root / "rules/or.yml").write_text(OR_RULE, encoding="utf-8")
    (root / "rules/large.yml").write_text(large_rule(), encoding="utf-8")
    if DRIVER_RULE.is_file():
        shutil.copy(DRIVER_RULE, root / "rules/driver.yml")
    (root / "docs").mkdir()
    (root / "mkdocs.yml").write_text("site_name: Sigma detection rule catalog\ntheme:\n  name: material\n"
                                     "  palette:\n    - scheme: default\n    - scheme: slate\n"  # (the dark scheme's styles)
                                     "plugins:\n  - sigma-catalog:\n      rules:\n        - rules\n", encoding="utf-8")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "-f", str(root / "mkdocs.yml"), "-d", str(root / "site")],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    httpd, thread = _serve(root / "site")
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    thread.join(5)


def _look(browser, url: str, width: int, scheme: str, shot: str | None) -> int:
    """Open `url` at this width and scheme; the page's horizontal overflow in px; a screenshot."""
    context = browser.new_context(viewport={"width": width, "height": 1000}, color_scheme=scheme)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(url)
    if scheme == "dark":
        tab.evaluate("document.body.setAttribute('data-md-color-scheme', 'slate')")
        tab.wait_for_timeout(600)  # the theme's colour transitions, before the screenshot
    overflow = tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if shot:
        SCREENSHOTS.mkdir(exist_ok=True)
        tab.screenshot(path=str(SCREENSHOTS / f"{shot}-{width}-{scheme}.png"), full_page=width < 1000)
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"
    return overflow


@pytest.mark.parametrize("width,scheme", SIZES)
def test_rule_pages_fit_the_width(browser, server, large_server, width, scheme):
    pages = [(server + f"rules/{REFERENCE_SLUG}/", "reference"),
             (large_server + "rules/5b0d3f1e-7a52-4c1e-9f0b-1a2b3c4d5e04/", "large"),
             (large_server + "rules/5b0d3f1e-7a52-4c1e-9f0b-1a2b3c4d5e01/", "or-condition")]
    if DRIVER_RULE.is_file():
        pages.append((large_server + "rules/7aaaf4b8-e47c-4295-92ee-6ed40a6f60c8/", "driver"))
    for url, name in pages:
        assert _look(browser, url, width, scheme, name) <= 0, f"{name} overflows the page at {width} px ({scheme})"


def test_condition_tree_shows_the_alternatives(browser, large_server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.goto(large_server + "rules/5b0d3f1e-7a52-4c1e-9f0b-1a2b3c4d5e01/")
    tree = tab.locator(".sc-tree")
    assert tree.is_visible()
    either = tree.locator("li", has=tab.locator("> .sc-op", has_text="or")).first
    branches = either.locator("> ul > li")
    assert branches.count() == 2
    assert branches.nth(0).inner_text().lower().split() == ["and", "stage", "1", "word", "not", "stage", "2", "word_ext"]
    assert branches.nth(1).inner_text().lower().split() == ["and", "stage", "3", "excel", "not", "stage", "4", "excel_ext"]
    # a leaf leads to its stage, which opens when it was folded
    tab.evaluate("document.getElementById('stage-5').open = false")
    tree.locator("a", has_text="Stage 5").click()
    tab.wait_for_function("location.hash === '#stage-5' && document.getElementById('stage-5').open")
    assert tab.locator("#stage-5 h3").inner_text() == "Stage 5: not filter_main_system"
    context.close()


def test_a_folded_stage_opens_from_its_address(browser, large_server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.goto(large_server + "rules/5b0d3f1e-7a52-4c1e-9f0b-1a2b3c4d5e04/")
    assert tab.evaluate("document.getElementById('stage-1').open") is False
    tab.goto(large_server + "rules/5b0d3f1e-7a52-4c1e-9f0b-1a2b3c4d5e04/#stage-1")
    assert tab.evaluate("document.getElementById('stage-1').open") is True
    context.close()
