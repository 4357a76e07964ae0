"""The browse pages in Chromium: rule lists that filter, the coverage matrix, search, phone width.

Same site and browser as test_browser.py (its fixtures). Screenshots of All rules and the matrix, at
desktop and phone width in both colour schemes, go to test-output/ (ignored by git) for a reviewer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test_browser import browser, page, server  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "test-output"
WIDTHS = {"desktop": 1400, "phone": 390}
SCHEMES = ("default", "slate")

pytestmark = pytest.mark.browser

#: The WCAG contrast of a cell's text against what is behind it (the first opaque background up the tree).
CONTRAST = """cells => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= .03928 ? v / 12.92 : ((v + .055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [.2126, .7152, .0722][i], 0);
  const background = node => {
    for (; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || c[3] > .5) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  return cells.map(cell => {
    const a = lum(rgb(getComputedStyle(cell).color)), b = lum(background(cell));
    return [cell.title, (Math.max(a, b) + .05) / (Math.min(a, b) + .05)];
  });
}"""

#: Cells whose name or count sticks out of the cell box (or whose count is not in it).
OVERFLOW = """cells => cells.filter(cell => {
  const box = cell.getBoundingClientRect();
  return Array.from(cell.children).some(part => {
    const r = part.getBoundingClientRect();
    return r.left < box.left - .5 || r.right > box.right + .5 || r.top < box.top - .5 || r.bottom > box.bottom + .5;
  }) || cell.scrollWidth > cell.clientWidth + 1;
}).map(cell => cell.title)"""


@pytest.fixture(params=[(w, s) for w in WIDTHS for s in SCHEMES], ids=lambda p: f"{p[0]}-{p[1]}")
def view(request, browser, server):  # noqa: F811
    width, scheme = request.param
    context = browser.new_context(base_url=server, viewport={"width": WIDTHS[width], "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.scheme = scheme
    tab.label = f"{width}-{scheme}"
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def _open(tab, path: str) -> None:
    tab.goto(path)
    tab.evaluate("scheme => document.body.setAttribute('data-md-color-scheme', scheme)", tab.scheme)


def _shoot(tab, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}-{tab.label}.png"), full_page=False)


def _visible_rows(tab) -> list[list[str]]:
    return tab.eval_on_selector_all(
        ".sc-list tbody tr", "rows => rows.filter(r => !r.hidden).map(r => Array.from(r.cells).map(c => c.innerText.trim()))")


def test_matrix_cells_fit_and_have_contrast(view):
    _open(view, "coverage/")
    cells = view.locator(".sc-matrix .sc-cell")
    assert cells.count() > 100
    assert view.eval_on_selector_all(".sc-matrix .sc-cell", OVERFLOW) == []
    low = [(title, round(ratio, 2)) for title, ratio in view.eval_on_selector_all(".sc-matrix .sc-cell", CONTRAST) if ratio < 4.5]
    assert low == []
    _shoot(view, "coverage")


def test_all_rules_filter_narrows_the_rows(view):
    _open(view, "rules/")
    view.locator(".sc-list-controls").wait_for()
    every = _visible_rows(view)
    level = view.locator(".sc-list-facet[name=level]")
    level.select_option("high")
    high = _visible_rows(view)
    assert 0 < len(high) < len(every)
    assert {row[2] for row in high} == {"high"}
    assert view.locator(".sc-list-count").inner_text().startswith(f"{len(high)} of ")
    view.locator(".sc-list-text").fill("wmi")
    both = _visible_rows(view)
    assert 0 < len(both) < len(high) and all("wmi" in row[0].lower() for row in both)
    level.select_option("")
    view.locator(".sc-list-text").fill("")
    _shoot(view, "all-rules")


def test_list_sorts_by_date_and_hides_retired_rules(page):  # noqa: F811
    page.goto("rules/")
    page.locator(".sc-list-controls").wait_for()
    statuses = [row[3] for row in _visible_rows(page)]
    assert "deprecated" not in statuses
    page.locator(".sc-list-toggle input").check()
    assert "deprecated" in [row[3] for row in _visible_rows(page)]
    page.locator(".sc-list-sort").select_option("date")
    dates = [row[4] for row in _visible_rows(page)]
    assert dates == sorted(dates, reverse=True)


@pytest.mark.parametrize("path", ["rules/", "levels/high/", "techniques/t1047/", "tactics/execution/", "find/?q=wmi", "coverage/"])
def test_no_horizontal_page_overflow_on_a_phone(browser, server, path):  # noqa: F811
    context = browser.new_context(base_url=server, viewport={"width": 390, "height": 800})
    tab = context.new_page()
    tab.goto(path)
    tab.wait_for_load_state("networkidle")
    width = tab.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    context.close()
    assert width[0] <= width[1], f"{path}: the page is {width[0]} px wide at {width[1]} px"


def test_search_query_lives_in_the_address_and_survives_a_reload(page):  # noqa: F811
    tab = page
    tab.goto("find/")
    tab.keyboard.press("/")  # focuses the search box
    assert tab.evaluate("document.activeElement.classList.contains('sc-search-input')")
    tab.keyboard.type("wmi")
    first = tab.locator(".sc-search-page .sc-search-results li").first
    first.wait_for(timeout=10_000)
    tab.wait_for_url("**/find/?q=wmi")
    tab.reload()
    assert tab.locator(".sc-search-page .sc-search-input").input_value() == "wmi"
    first.wait_for(timeout=10_000)
    # results show level and log source; a title match ranks before any other kind of match
    assert "windows / image_load" in tab.locator(".sc-search-page .sc-search-results li", has_text="WMI module loaded").inner_text()
    titles = tab.locator(".sc-search-page .sc-search-results li > a").all_inner_texts()
    in_title = [("wmi" in title.lower()) for title in titles]
    assert in_title == sorted(in_title, reverse=True)


def test_search_facets_narrow_the_results_and_stay_in_the_address(page):  # noqa: F811
    tab = page
    tab.goto("find/?q=windows")
    tab.locator(".sc-search-page .sc-search-results li").first.wait_for(timeout=10_000)
    every = tab.locator(".sc-search-page .sc-search-results li").count()
    tab.locator(".sc-search-facets select[name=level]").select_option("high")
    tab.wait_for_url("**level=high*")
    high = tab.locator(".sc-search-page .sc-search-results li").all_inner_texts()
    assert 0 < len(high) < every and all("high" in item for item in high)
    tab.reload()
    tab.locator(".sc-search-page .sc-search-results li").first.wait_for(timeout=10_000)
    assert tab.locator(".sc-search-page .sc-search-results li").count() == len(high)


def test_search_finds_tactic_names(page):  # noqa: F811
    tab = page
    tab.goto("find/?q=credential access")
    tab.locator(".sc-search-page .sc-search-results li").first.wait_for(timeout=10_000)
    assert "Credential Access" in tab.locator(".sc-search-page .sc-search-results li").first.inner_text()


def test_header_more_link_opens_the_search_page(page):  # noqa: F811
    tab = page
    tab.goto("attack/")
    box = tab.locator(".md-header .sc-search-input")
    box.fill("e")
    more = tab.locator(".md-header .sc-search-more a")
    more.wait_for(timeout=10_000)
    more.click()
    tab.wait_for_url("**/find/?q=e")
