"""Our search index against Pagefind, on a built catalog site: bytes and time to the first result.

    python scripts/bench_search.py SITE_DIR [--query Q ...] [--runs N]

SITE_DIR is a site built by `mkdocs build` (e.g. of SigmaHQ). The script builds a Pagefind index of
the same records our index holds (title, id, description, authors, tags, log source, tactics,
techniques, indicator values; filters level, status, log source, tactic), timed, into
SITE_DIR/pagefind/, and a small page that queries it. Then, in Chromium (Playwright, /usr/bin/chromium),
for each query and each engine, from a fresh browser context: the bytes of the search files fetched
until the first result shows, and the milliseconds from navigation to it (median of --runs).

Pagefind is not a dependency of the catalog: install it to run this (`pip install 'pagefind[extended]'`,
or put a `pip install --target` folder on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import json
import statistics
import threading
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
PAGE = """<!doctype html><meta charset="utf-8"><title>pagefind bench</title><ol id="results"></ol>
<script type="module">
const q = new URLSearchParams(location.search).get("q");
const pagefind = await import("./pagefind/pagefind.js");
await pagefind.options({excerptLength: 20});
const search = await pagefind.search(q);
const first = search.results.length ? await search.results[0].data() : null;
const li = document.createElement("li");
li.textContent = first ? first.meta.title + " · " + first.meta.level + " · " + first.meta.logsource : "none";
document.getElementById("results").appendChild(li);
</script>"""


def records(site: Path) -> list[dict]:
    catalog = json.loads((site / "exports/catalog.json").read_text(encoding="utf-8"))
    index = json.loads((site / "assets/sigma-catalog/search-index.json").read_text(encoding="utf-8"))
    names, values = index.get("names", []), index["values"]
    by_slug = {row[0]: row for row in index["rules"]}
    found = []
    for rule in catalog["rules"]:
        row = by_slug[rule["slug"]]
        logsource = names[row[8]] if len(row) > 8 and row[8] >= 0 else ""
        tactics = [names[i] for i in row[9]] if len(row) > 9 else []
        words = [names[i] for i in row[10]] if len(row) > 10 else []
        content = "\n".join([rule["title"], rule.get("id") or "", rule.get("description") or "", logsource, *tactics, *words,
                             *row[5], *(values[i] for i in row[6])])
        found.append({
            "url": f"/rules/{rule['slug']}/", "content": content, "language": "en",
            "meta": {"title": rule["title"], "level": rule.get("level") or "", "logsource": logsource},
            "filters": {"level": [rule.get("level") or "none"], "status": [rule.get("status") or "none"],
                        "logsource": [logsource or "none"], "tactic": tactics or ["none"]},
        })
    return found


def build_pagefind(site: Path) -> float:
    """Index the records with the Pagefind CLI (the Python API's one request per record is far
    slower): one small HTML file per rule, its filters and meta marked up as Pagefind reads them."""
    import subprocess
    import sys
    import tempfile
    from html import escape

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder)
        for record in records(site):
            page = source / record["url"].strip("/") / "index.html"
            page.parent.mkdir(parents=True)
            filters = "".join(f'<span data-pagefind-filter="{name}">{escape(value)}</span>'
                              for name, values in record["filters"].items() for value in values)
            meta = "".join(f'<span data-pagefind-meta="{name}">{escape(value)}</span>' for name, value in record["meta"].items())
            page.write_text(f'<!doctype html><html lang="en"><body><main data-pagefind-body><h1>{escape(record["meta"]["title"])}</h1>'
                            f'<p>{escape(record["content"])}</p><div hidden>{filters}{meta}</div></main></body></html>', encoding="utf-8")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pagefind", "--site", str(source), "--output-path", str(site / "pagefind"),
                        "--quiet"], check=True)
        return time.perf_counter() - started


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_port}/"


def measure(browser, url: str, done_selector: str, search_file) -> tuple[int, float]:
    """(bytes of search files, ms from navigation start to the first result) in a fresh context."""
    context = browser.new_context()
    page = context.new_page()
    sizes: list[int] = []
    page.on("requestfinished", lambda request: sizes.append(len(request.response().body())) if search_file(request.url) else None)
    page.goto(url)
    page.locator(done_selector).first.wait_for(timeout=60_000)
    elapsed = page.evaluate("performance.now()")
    context.close()
    return sum(sizes), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("--query", action="append", default=None)
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    site = arguments.site.resolve()
    queries = arguments.query or ["mimikatz", "wbemcomn.dll", "T1047", "powershell"]
    seconds = build_pagefind(site)
    (site / "pf-bench.html").write_text(PAGE, encoding="utf-8")
    pagefind_bytes = sum(path.stat().st_size for path in (site / "pagefind").rglob("*") if path.is_file())
    own = (site / "assets/sigma-catalog/search-index.json").read_bytes()
    print(f"Pagefind: index built in {seconds:.1f} s, {pagefind_bytes / 1024:.0f} KB on disk in all")
    print(f"own index: {len(own) / 1024:.0f} KB, {len(gzip.compress(own, 6)) / 1024:.0f} KB gzipped")

    from playwright.sync_api import sync_playwright

    httpd, base = serve(site)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for query in queries:
                for name, url, selector, is_search in (
                    ("own", f"{base}find/?q={query}", ".sc-search-page .sc-search-results li", lambda u: "search-index.json" in u),
                    ("pagefind", f"{base}pf-bench.html?q={query}", "#results li", lambda u: "/pagefind/" in u),
                ):
                    runs = [measure(browser, url, selector, is_search) for _ in range(arguments.runs)]
                    print(f"{query!r:16} {name:9} {runs[0][0] / 1024:8.0f} KB  {statistics.median(r[1] for r in runs):7.0f} ms")
            browser.close()
    finally:
        httpd.shutdown()


if __name__ == "__main__":
    main()
