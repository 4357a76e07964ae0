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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require_browser()
    site = tmp_path_factory.mktemp("browser") / "site"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(site)],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )
    assert result.returncode == 0, result.stderr[-3000:]

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
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
