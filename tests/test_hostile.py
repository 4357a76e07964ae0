"""Hostile and broken rules (tests/hostile/): expected errors, safe pages, bounded time and memory.

The corpus and what must happen to each file are in tests/hostile/EXPECTED.yml; the bounds are
explained in docs/review.md. Big and special inputs (a 5 MB rule, alias and merge cases too big to
commit, symbolic links out of the rule folder and in loops, conditions nested thousands deep) are
made at test time.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from catalog.pipeline import build_catalog

HERE = Path(__file__).resolve().parent
HOSTILE = HERE / "hostile"
EXPECTED = yaml.safe_load((HOSTILE / "EXPECTED.yml").read_text(encoding="utf-8"))
LIMITS = EXPECTED["limits"]
SECRET = "SIGMA-CATALOG-SECRET-7d1e"  # in the file the symbolic link points to: must never show up
HUGE_VALUES = 50_000
CHROMIUM = Path("/usr/bin/chromium")


# --- making the corpus --------------------------------------------------------------------


def make_huge(path: Path) -> None:
    lines = ["title: Huge keyword rule", "id: 0b3c2f5e-7c1a-4e55-9a77-0000000000bb", "status: test", "level: low",
             "logsource:", "  product: windows", "detection:", "  keywords:"]
    lines += [f'    - "kw{number:05d}-{"x" * 80}"' for number in range(HUGE_VALUES)]
    lines += ["  condition: keywords", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    assert path.stat().st_size > 4_800_000


def make_symlink_out(rules: Path) -> None:
    outside = rules.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.yml").write_text(
        f"title: {SECRET}\nlogsource: {{product: windows}}\ndetection:\n  selection: {{Image: '{SECRET}'}}\n  condition: selection\n",
        encoding="utf-8",
    )
    os.symlink(outside / "secret.yml", rules / "symlink_out.yml")


LIMITS_HEAD = "title: {title}\nlogsource: {{product: linux}}\n"
LIMITS_BODY = "detection:\n  pick:\n    Image: /bin/{name}\n  condition: pick\n"


def make_alias_memory(path: Path) -> None:
    """A 20,000-character value aliased 100,000 times: 420 KB of text, 2 GB once expanded."""
    text = LIMITS_HEAD.format(title="Alias memory") + f"big: &big {'m' * 20_000}\nmany: [" + ", ".join(["*big"] * 100_000) + "]\n"
    path.write_text(text + LIMITS_BODY.format(name="memory"), encoding="utf-8")


def make_values_across_documents(path: Path) -> None:
    """300 documents, each expanding to 990,000 values: each under a per-document cap of 1,000,000."""
    documents = []
    for number in range(300):
        documents.append(
            LIMITS_HEAD.format(title=f"Values {number}") + "row: &row [" + ",".join(["v"] * 1000) + "]\nrows: ["
            + ",".join(["*row"] * 990) + "]\n" + LIMITS_BODY.format(name=f"values{number}")
        )
    path.write_text("---\n".join(documents), encoding="utf-8")


def make_merge_many_keys(path: Path) -> None:
    keys = "".join(f"  key{number}: value{number}\n" for number in range(20_000))
    text = LIMITS_HEAD.format(title="Merge of many keys") + "base: &base\n" + keys + "merged:\n  <<: *base\n  own: 1\n"
    path.write_text(text + LIMITS_BODY.format(name="merge"), encoding="utf-8")


def make_global_many_keys(path: Path) -> None:
    keys = "".join(f"key{number}: value{number}\n" for number in range(4_000))
    documents = "".join("---\n" + LIMITS_BODY.format(name=f"global{number}") for number in range(100))
    path.write_text("action: global\n" + LIMITS_HEAD.format(title="Global of many keys") + keys + documents, encoding="utf-8")


# --- bounded at any size (issue 10): what one rule may cost the site ------------------------


def make_space_run(path: Path) -> None:
    """A keyword with a run of 200,000 spaces (the highlighter took 52 s over it)."""
    text = "title: Space run\nlogsource: {product: windows}\ndetection:\n  keywords:\n    - abc" + " " * 200_000 + "def\n"
    path.write_text(text + "  condition: keywords\n", encoding="utf-8")


def make_giant_title(path: Path) -> None:
    """A 1 MB title and 500 tags of its own (wrote 497 MB in 585 files: every tag page listed the title)."""
    tags = "".join(f"  - custom.giant-{number:03d}\n" for number in range(500))
    text = f"title: Giant {'t' * 1_000_000}\nlogsource: {{product: windows}}\ntags:\n{tags}"
    path.write_text(text + LIMITS_BODY.format(name="giant"), encoding="utf-8")


def make_many_fields(path: Path) -> None:
    """100,000 fields in one search, 2.7 MB (wrote 1.2 GB: a page per field, every value repeated)."""
    fields = "".join(f"    Field{number:06d}: value-{number:06d}\n" for number in range(100_000))
    path.write_text("title: Many fields\nlogsource: {product: windows}\ndetection:\n  pick:\n" + fields + "  condition: pick\n",
                    encoding="utf-8")


#: The generated cases of EXPECTED.yml: name -> maker(rules folder); big files, links, loops.
GENERATED = {
    "huge.yml": lambda rules: make_huge(rules / "huge.yml"),
    "symlink_out.yml": make_symlink_out,
    "symlink_loop.yml": lambda rules: os.symlink("symlink_loop.yml", rules / "symlink_loop.yml"),
    "folder_loop": lambda rules: os.symlink("folder_loop", rules / "folder_loop"),
    "alias_memory.yml": lambda rules: make_alias_memory(rules / "alias_memory.yml"),
    "values_across_documents.yml": lambda rules: make_values_across_documents(rules / "values_across_documents.yml"),
    "merge_many_keys.yml": lambda rules: make_merge_many_keys(rules / "merge_many_keys.yml"),
    "global_many_keys.yml": lambda rules: make_global_many_keys(rules / "global_many_keys.yml"),
    "space_run.yml": lambda rules: make_space_run(rules / "space_run.yml"),
    "giant_title.yml": lambda rules: make_giant_title(rules / "giant_title.yml"),
    "many_fields.yml": lambda rules: make_many_fields(rules / "many_fields.yml"),
}


def make_nesting(folder: Path) -> None:
    head = "title: Deep\nlogsource: {product: windows}\ndetection:\n  selection: {Image: a}\n"
    (folder / "deep_parentheses.yml").write_text(head + "  condition: " + "(" * 5000 + "selection" + ")" * 5000 + "\n", encoding="utf-8")
    (folder / "deep_not.yml").write_text(head + "  condition: " + "not " * 5000 + "selection\n", encoding="utf-8")
    (folder / "deep_flow_list.yml").write_text(
        "title: Deep\nlogsource: {product: windows}\ndetection:\n  selection:\n    Image: " + "[" * 5000 + "]" * 5000 + "\n  condition: selection\n",
        encoding="utf-8",
    )
    (folder / "deep_block_map.yml").write_text(
        "title: Deep\ndetection:\n  selection:\n" + "".join("  " * (level + 2) + f"k{level}:\n" for level in range(3000)),
        encoding="utf-8",
    )


def make_corpus(root: Path) -> Path:
    """A project folder: rules/ with the committed corpus and the generated cases, docs/, mkdocs.yml."""
    rules = root / "rules"
    shutil.copytree(HOSTILE / "rules", rules)
    for maker in GENERATED.values():
        maker(rules)
    (root / "docs").mkdir()
    (root / "docs" / "index.md").write_text("# Hostile corpus\n", encoding="utf-8")
    (root / "mkdocs.yml").write_text(
        "site_name: Hostile corpus\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules: [rules]\n"
        "      cache_dir: .cache/sigma-catalog\n",
        encoding="utf-8",
    )
    # a git repository whose only commit has no rules: a preview build lists every hostile rule as added
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org"}
    for command in (["init", "-q", "-b", "main"], ["add", "docs", "mkdocs.yml"], ["commit", "-q", "-m", "no rules yet"]):
        subprocess.run(["git", *command], cwd=root, check=True, capture_output=True, env=env)
    return root


def all_cases() -> dict[str, dict]:
    return {**EXPECTED["cases"], **EXPECTED["generated"]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("hostile"))


def files_under(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")}


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory) -> Path:
    """The hostile corpus built into a site (non-strict, with the Changes page), nothing written outside it."""
    scratch = tmp_path_factory.getbasetemp()
    before = files_under(scratch)
    site = corpus / "site"
    env = {**os.environ, "CATALOG_CACHE_DIR": str(corpus / ".attack-cache")}
    result = subprocess.run([sys.executable, "-m", "catalog.cli", "build", "--base", "HEAD", "--site-dir", str(site)], cwd=corpus, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    created = {name for name in files_under(scratch) - before}
    allowed = (f"{corpus.relative_to(scratch).as_posix()}/{folder}" for folder in ("site", ".cache", ".attack-cache"))
    prefixes = tuple(allowed)
    stray = sorted(name for name in created if not name.startswith(prefixes))
    assert stray == [], f"files written outside the site and cache folders: {stray[:20]}"
    for escaped in ("/tmp/sigma-catalog-escaped", "/etc/passwd/index.html", "/root/x"):
        assert not Path(escaped).exists()
    return site


# --- catalog check ------------------------------------------------------------------------


def test_check_gives_the_expected_errors(corpus):
    from catalog.attack import load_knowledge
    from catalog.check import run_check

    result = run_check([str(corpus / "rules")], load_knowledge())
    found: dict[str, set[str]] = {}
    for problem in result.problems:
        found.setdefault(Path(problem.path).name, set()).add(problem.code)
    for name, case in all_cases().items():
        assert set(case["codes"]) <= found.get(name, set()), f"{name}: expected {case['codes']}, got {sorted(found.get(name, ()))}"
        if case["outcome"] == "error":
            assert any(p.severity.value == "error" for p in result.problems if Path(p.path).name == name), name
        if "message" in case:
            assert any(case["message"] in p.message for p in result.problems if Path(p.path).name == name), name
    unexpected = {name: codes for name, codes in found.items() if name not in all_cases()}
    assert unexpected == {}
    assert result.failed()
    assert SECRET not in json.dumps([p.to_json() for p in result.problems])


# --- the site -----------------------------------------------------------------------------


class Scan(HTMLParser):
    """Every script element's text, every attribute, and the text of the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            self.attributes.append((tag, name, value or ""))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


_BAD_URL = re.compile(r"^(?:javascript|vbscript|data):", re.IGNORECASE)
_URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "poster", "background", "srcdoc"}


def entry_slugs(corpus: Path) -> dict[str, str]:
    catalog = build_catalog([str(corpus / "rules")])
    return {entry.document.source.path: entry.slug for entry in catalog.entries}


def test_site_is_safe(built, corpus):
    slugs = entry_slugs(corpus)
    problems_page = (built / "problems" / "index.html").read_text(encoding="utf-8")
    for name, case in all_cases().items():
        if case["outcome"] == "page":
            assert name in slugs, f"{name} did not become a document"
            assert (built / "rules" / slugs[name] / "index.html").is_file(), name
        else:
            assert name not in slugs
            assert name in problems_page, f"{name} is not on the Problems page"
        for code in case["codes"]:
            assert f"[{code}]" in problems_page
    # every page address is a safe slug inside the site
    for page in (built / "rules").iterdir():
        assert page.name == "index.html" or re.fullmatch(r"[a-z0-9-]+", page.name), page.name

    output = {path: path.read_bytes() for path in built.rglob("*") if path.is_file()}
    for path, data in output.items():
        assert SECRET.encode() not in data, f"the symlinked file's content is in {path}"
        assert b'href="javascript:' not in data.lower(), path
        assert b"href='javascript:" not in data.lower(), path
        if path.suffix != ".html":
            continue
        html = data.decode("utf-8")
        assert not re.search(r"<script[^>]*>[^<]*__pwned", html), f"injected script element in {path}"
        scan = Scan()
        scan.feed(html)
        assert not any("__pwned" in script for script in scan.scripts), path
        for tag, name, value in scan.attributes:
            if name.startswith("on"):
                assert "__pwned" not in value, (path, tag, name, value)
            if name in _URL_ATTRIBUTES:
                assert not _BAD_URL.match("".join(value.split())), (path, tag, name, value)
        assert not re.search(r"<(?:img|svg|iframe|b|a)\b[^>]*\bon\w+\s*=\s*[\"']?window\.__pwned", html), path

    # template syntax is text: shown as written, never evaluated
    jinja = (built / "rules" / slugs["jinja_syntax.yml"] / "index.html").read_text(encoding="utf-8")
    scan = Scan()
    scan.feed(jinja)
    text = "".join(scan.text)
    assert "{{ 7*7 }}" in text and "{% raw %}" in text and "{% include 'rule.html' %}" in text
    assert "49" not in text
    # the injected title is shown literally as the page's heading
    xss = (built / "rules" / slugs["xss_everywhere.yml"] / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;window.__pwned = &#34;title&#34;&lt;/script&gt;" in xss or "&lt;script&gt;window.__pwned = &quot;title&quot;&lt;/script&gt;" in xss
    # the Changes page lists every hostile rule (all new), as text
    changes = (built / "changes" / "index.html").read_text(encoding="utf-8")
    for name, case in all_cases().items():
        if case["outcome"] == "page":
            assert f'href="../rules/{slugs[name]}/"' in changes, name
            assert "New in this pull request" in (built / "rules" / slugs[name] / "index.html").read_text(encoding="utf-8")
    assert "… and 49,800 more" in changes  # the 50,000 values of huge.yml are cut at 200 on this page
    # the 5 MB rule: its page shows the body cut (under 1 MB) and links the whole file, served beside it
    huge = built / "rules" / slugs["huge.yml"] / "index.html"
    assert huge.stat().st_size < 1_000_000 and b"kw49999-" not in huge.read_bytes() and b'href="../../rules/' in huge.read_bytes()
    assert b"kw49999-" in (huge.parent / "rule.yml").read_bytes()


def test_strict_build_lists_all_errors_at_once(corpus, tmp_path):
    env = {**os.environ, "CATALOG_CACHE_DIR": str(corpus / ".attack-cache")}
    result = subprocess.run([sys.executable, "-m", "catalog.cli", "build", "--strict", "--site-dir", str(tmp_path / "strict")],
                            cwd=corpus, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    refused = [name for name, case in all_cases().items() if case["outcome"] == "error"] + ["duplicate_id_b.yml"]
    message = result.stderr
    assert "rule errors (strict: true)" in message
    for name in refused:
        assert name in message, f"{name} missing from the strict failure:\n{message[-2000:]}"
    assert "Traceback" not in message
    assert not (tmp_path / "strict" / "rules").exists()


# --- time and memory per case -------------------------------------------------------------

_LIMITED = """
import resource, sys
limit, report = int(sys.argv[1]), sys.argv[2]
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.argv = ["catalog", *sys.argv[3:]]
try:
    from catalog.cli import main
    code = main()
finally:
    # this process's own peak (VmHWM is per address space: the parent's size before exec does not count)
    with open("/proc/self/status") as status, open(report, "w") as out:
        out.write(next((line.split()[1] for line in status if line.startswith("VmHWM:")), "0"))
sys.exit(code)
"""


def run_limited(args: list[str], cwd: Path) -> tuple[int, float, int, str]:
    """(exit code, seconds, peak RSS in bytes, stderr) of `catalog ARGS` under the manifest's limits."""
    env = {**os.environ, "CATALOG_CACHE_DIR": str(cwd / ".attack-cache")}
    report = cwd / f".peak-{args[0]}"
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-c", _LIMITED, str(LIMITS["memory_bytes"]), str(report), *args], cwd=cwd, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, stderr = process.communicate(timeout=LIMITS["seconds"])
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"catalog {' '.join(args)} took more than {LIMITS['seconds']} s")
    elapsed = time.monotonic() - started
    try:
        peak = int(report.read_text()) * 1024
    except (OSError, ValueError):
        peak = 0
    return process.returncode, elapsed, peak, stderr.decode("utf-8", "replace")


BOUNDS: list[tuple[str, str, float, int]] = []


def single_case_project(tmp_path: Path, name: str, source: Path | None = None, maker=None) -> Path:
    project = tmp_path / name.removesuffix(".yml")
    (project / "rules").mkdir(parents=True)
    (project / "docs").mkdir()
    (project / "docs" / "index.md").write_text("# x\n", encoding="utf-8")
    (project / "mkdocs.yml").write_text(
        "site_name: One case\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules: [rules]\n", encoding="utf-8"
    )
    if source is not None:
        shutil.copy2(source, project / "rules" / name)
        if name.startswith("duplicate_id_"):  # a duplicate needs its twin
            for twin in HOSTILE.glob("rules/duplicate_id_*.yml"):
                shutil.copy2(twin, project / "rules" / twin.name)
    if maker is not None:
        maker(project)
    return project


def _make_generated(name: str):
    def maker(project: Path) -> None:
        if name in GENERATED:
            GENERATED[name](project / "rules")
        else:
            scratch = project / "nesting"
            scratch.mkdir()
            make_nesting(scratch)
            shutil.copy2(scratch / name, project / "rules" / name)
    return maker


CASE_NAMES = [(name, "cases") for name in EXPECTED["cases"]] + [(name, "generated") for name in EXPECTED["generated"]] + [
    (name, "nesting") for name in EXPECTED["nesting"]
]


@pytest.mark.parametrize("name,group", CASE_NAMES, ids=[name for name, _ in CASE_NAMES])
def test_each_case_within_bounds(name, group, tmp_path, monkeypatch):
    case = EXPECTED[group][name]
    source = HOSTILE / "rules" / name if group == "cases" else None
    project = single_case_project(tmp_path, name, source, None if source else _make_generated(name))
    for args in (["check", "rules"], ["build", "--site-dir", "site"]):
        code, seconds, peak, stderr = run_limited(args, project)
        BOUNDS.append((name, args[0], seconds, peak))
        print(f"{name}: catalog {args[0]}: exit {code}, {seconds:.2f} s, peak RSS {peak / 2**20:.0f} MiB")
        assert "Traceback" not in stderr and "MemoryError" not in stderr, stderr[-2000:]
        assert seconds < LIMITS["seconds"] and peak < LIMITS["memory_bytes"]
        if args[0] == "check":
            assert code == (1 if case["outcome"] == "error" or name.startswith("duplicate_id_") else 0), (name, code, stderr[-500:])
        else:
            assert code == 0, stderr[-2000:]
            assert (project / "site" / "problems" / "index.html").is_file()
            assert_site_bounds(project / "site", case)


def assert_site_bounds(site: Path, case: dict) -> None:
    """What the case may add to the site: `site_bytes` in all, no page over `page_bytes`."""
    sizes = [path.stat().st_size for path in site.rglob("*") if path.is_file()]
    assert sum(sizes) < case.get("site_bytes", 30_000_000), f"site of {sum(sizes):,} bytes in {len(sizes)} files"
    largest = max(path.stat().st_size for path in site.rglob("*.html"))
    assert largest < case.get("page_bytes", 3_000_000), f"a page of {largest:,} bytes"


# --- in a browser -------------------------------------------------------------------------


def _browser_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return CHROMIUM.exists()


#: What a page shows of an injection that ran: the payloads' global, dialogs, javascript: attributes.
STATE = """() => {
    const bad = [];
    for (const element of document.querySelectorAll('*')) {
        for (const attribute of element.attributes) {
            const value = attribute.value.replace(/[\\s\\u0000-\\u001f]+/g, '').toLowerCase();
            if (value.startsWith('javascript:') || value.startsWith('vbscript:')) bad.push(element.tagName + ' ' + attribute.name);
            if (attribute.name.startsWith('on') && attribute.value.includes('__pwned')) bad.push(element.tagName + ' ' + attribute.name);
        }
    }
    return {pwned: window.__pwned === undefined ? null : String(window.__pwned), alerts: window.__alerts, bad,
            scripts: [...document.scripts].filter(s => s.text.includes('__pwned')).length};
}"""


@pytest.mark.browser
def test_no_injected_script_runs_in_a_browser(built, corpus):
    if not _browser_available():
        if os.environ.get("CI"):
            pytest.fail("the browser test needs Playwright and Chromium at /usr/bin/chromium in CI")
        pytest.skip("no Chromium at /usr/bin/chromium (or no Playwright)")
    from playwright.sync_api import sync_playwright

    slugs = entry_slugs(corpus)
    pages = [f"rules/{slug}/" for name, slug in sorted(slugs.items()) if name != "huge.yml"]
    pages += ["", "problems/", "find/", "rules/", "changes/"]
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(built)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            )
            context = browser.new_context()
            context.add_init_script(
                "window.__alerts = [];"
                "for (const name of ['alert', 'confirm', 'prompt']) { window[name] = (m) => { window.__alerts.push(String(m)); }; }"
            )
            # nothing leaves the machine: every request to another host is refused
            context.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"), lambda route: route.abort())
            page = context.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            # the check below does catch a payload that runs (a control, so a broken check cannot pass)
            page.set_content("<script>window.__pwned = 1; alert(1)</script><a href=' javascript:void(0)'>x</a>")
            assert page.evaluate(STATE) == {"pwned": "1", "alerts": ["1"], "bad": ["A href"], "scripts": 1}
            page.goto("about:blank")
            for address in pages:
                page.goto(base + address, wait_until="load")
                page.wait_for_timeout(50)
                if address == "find/" or address == "":
                    box = page.locator("input[type=search], input.sc-search-input").first
                    if box.count():
                        for query in ("script", "pwned", "{{", "javascript"):
                            box.fill(query)
                            page.wait_for_timeout(100)
                state = page.evaluate(STATE)
                assert state == {"pwned": None, "alerts": [], "bad": [], "scripts": 0}, (address, state)
            assert dialogs == []
            browser.close()
    finally:
        server.shutdown()


# --- addresses, text output and rule text (issue 10) ----------------------------------------------

DUPLICATE_ID = "0b3c2f5e-7c1a-4e55-9a77-0000000000dd"
JINJA_ID = "0b3c2f5e-7c1a-4e55-9a77-000000000002"
RESERVED = re.compile(r"(?:con|prn|aux|nul|com\d|lpt\d)(?:\..*)?", re.I)


def test_no_rule_takes_another_rules_address_or_links(corpus):
    catalog = build_catalog([str(corpus / "rules")])
    by_file = {entry.document.source.path: entry for entry in catalog.entries}
    victim, hijacker = by_file["jinja_syntax.yml"], by_file["name_takes_id.yml"]
    assert victim.slug == JINJA_ID and hijacker.slug == "rule-" + JINJA_ID
    assert by_file["xss_everywhere.yml"].slug == "0b3c2f5e-7c1a-4e55-9a77-000000000001"
    assert by_file["title_like_id.yml"].slug == "rule-0b3c2f5e-7c1a-4e55-9a77-000000000001"
    correlation = by_file["correlation_by_id.yml"]
    assert correlation.targets == [victim] and victim.correlations == [correlation] and hijacker.correlations == []
    assert correlation.related == [("similar", victim)]
    named = [p for p in catalog.problems if p.code == "name-is-other-id"]
    assert [(Path(p.path).name, p.line, p.column, p.severity.value) for p in named] == [("name_takes_id.yml", 2, 7, "error")]
    # a shared id: both files get the error at their id line; neither takes the plain address
    duplicates = sorted((Path(p.path).name, p.line) for p in catalog.problems if p.code == "duplicate-id")
    assert duplicates == [("duplicate_id_a.yml", 2), ("duplicate_id_b.yml", 2)]
    assert {by_file[f"duplicate_id_{x}.yml"].slug for x in "ab"} == {f"{DUPLICATE_ID}-1", f"{DUPLICATE_ID}-2"}
    assert all(not entry.slug == DUPLICATE_ID for entry in catalog.entries)


def test_site_addresses_of_ids_names_and_device_names(built, corpus):
    slugs = entry_slugs(corpus)
    # the shared id's address lists both documents instead of redirecting to one of them
    shared = (built / "rule" / DUPLICATE_ID / "index.html").read_text(encoding="utf-8")
    assert "http-equiv" not in shared
    for number in (1, 2):
        assert f'href="../../rules/{DUPLICATE_ID}-{number}/"' in shared
    assert 'http-equiv="refresh"' in (built / "rule" / JINJA_ID / "index.html").read_text(encoding="utf-8")
    assert f"../../rules/{JINJA_ID}/" in (built / "rule" / JINJA_ID / "index.html").read_text(encoding="utf-8")
    assert not (built / "rule" / "nul").exists()
    # no file or folder of the site has a Windows device name (nul, aux, con.txt, COM1...)
    reserved = [path for path in built.rglob("*") if RESERVED.fullmatch(path.name)]
    assert reserved == []
    assert (built / "rules" / slugs["windows_device_names.yml"] / "index.html").is_file()
    # the Changes page shows the pair as documents sharing an id, never as a rename
    changes = (built / "changes" / "index.html").read_text(encoding="utf-8")
    assert changes.count("Duplicate id</p>") == 2 and "rules/duplicate_id_b.yml" in changes
    assert 'id="renamed"' not in changes


def test_rule_text_with_the_frame_path_reaches_the_page_unchanged(built, corpus):
    from linkcheck import code_text

    slug = entry_slugs(corpus)["frame_path_text.yml"]
    html = (built / "rules" / slug / "index.html").read_text(encoding="utf-8")
    raw = (HOSTILE / "rules" / "frame_path_text.yml").read_text(encoding="utf-8")
    assert code_text(html, "sc-code") == raw
    assert "# a comment with the path: sigma-catalog-frame/frame/index.html" in html
    assert "<title>Rule text naming sigma-catalog-frame/frame/" in html


FORGED_NAME = "evil\n::error file=x.yml::forged by a file name.yml"


def forged_project(tmp_path: Path) -> Path:
    """forged_log_lines.yml, a file whose name holds a newline and a workflow command, and a twin
    with the same id (so that names and titles appear in messages)."""
    project = single_case_project(tmp_path, "forged_log_lines.yml", HOSTILE / "rules" / "forged_log_lines.yml")
    rules = project / "rules"
    twin = (rules / "forged_log_lines.yml").read_text(encoding="utf-8").replace("Image: 'forged'", "Image: 'twin'")
    (rules / FORGED_NAME).write_text(twin, encoding="utf-8")
    (rules / "broken\n::error::.yml").write_text("title: [unclosed\n", encoding="utf-8")
    return project


def run_catalog(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CATALOG_CACHE_DIR": str(project / ".attack-cache")}
    return subprocess.run([sys.executable, "-m", "catalog.cli", *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)


def test_text_output_cannot_forge_log_lines(tmp_path):
    project = forged_project(tmp_path)
    text = run_catalog(project, "check", "rules")
    github = run_catalog(project, "check", "--format", "github", "rules")
    strict = run_catalog(project, "build", "--strict", "--site-dir", "site")
    assert text.returncode == github.returncode == strict.returncode == 1
    problems = text.stdout.splitlines()[:-1]
    assert len(problems) == 5, text.stdout  # 2 duplicate ids, 2 not-UUID ids, 1 YAML error: one line each
    for output in (text.stdout, text.stderr, strict.stdout, strict.stderr):
        assert not [line for line in output.splitlines() if line.lstrip().startswith("::")], output
        assert "\x1b" not in output
    assert "Forged\\n::error file=rules/x.yml,line=1::forged error\\n::warning::" in text.stdout
    assert "evil\\n::error file=x.yml::forged by a file name.yml" in text.stdout
    assert "broken\\n::error::.yml" in strict.stderr and "rule errors (strict: true)" in strict.stderr
    # GitHub format: one workflow command per problem, nothing a rule wrote starts a line
    lines = github.stdout.splitlines()
    commands = [line for line in lines if line.startswith("::")]
    assert len(commands) == 5 and len(lines) == 6
    assert all(re.match(r"::(?:error|warning) file=", line) for line in commands)
