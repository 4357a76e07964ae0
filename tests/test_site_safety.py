"""What a build must never do, whatever the rules (issue 10): leave the build machine's paths in the
site, put Windows device names or formula cells in it, lose the previous site when it fails, or lose
the whole site to one page that cannot be rendered; and `mkdocs serve` keeps answering while a bad
file is in the rule folder."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from conftest import PROJECT, git
from catalog.pipeline import build_catalog, is_reserved_name, slugify

RULE = """title: {title}
id: {id}
status: test
level: low
tags:
  - attack.execution
  - attack.t1059
logsource:
  product: windows
detection:
  selection:
    Image: '{value}'
  condition: selection
"""

SITE_CONFIG = ("site_name: Safety\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules:\n        - path: rules\n"
               "          name: Our rules\n")


def rule(title: str, number: int, value: str = "x.exe") -> str:
    return RULE.format(title=title, id=f"5d0c1a3e-0000-4000-8000-{number:012d}", value=value)


def project(root: Path, rules: dict[str, str]) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "docs").mkdir()
    for name, text in rules.items():
        (root / "rules" / name).write_text(text, encoding="utf-8")
    (root / "mkdocs.yml").write_text(SITE_CONFIG, encoding="utf-8")
    return root


def catalog_build(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1767225600"}
    return subprocess.run([sys.executable, "-m", "catalog.cli", "build", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)


def tree(site: Path) -> dict[str, bytes]:
    return {path.relative_to(site).as_posix(): path.read_bytes() for path in sorted(site.rglob("*")) if path.is_file()}


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nul", "NUL", "aux", "con", "Con.txt", "prn.html", "com1", "COM9", "lpt1", "lpt9.yml", "nul.tar.gz"])
def test_windows_device_names_never_become_names(name):
    from catalog.site.addresses import key_slug, rule_redirect_path

    assert is_reserved_name(name)
    for slug in (slugify(name), key_slug(name)):
        assert slug and not is_reserved_name(slug) and slug.split("-")[0] == name.split(".")[0].lower()
    assert rule_redirect_path(name) is None or not is_reserved_name(rule_redirect_path(name).split("/")[1])


def test_names_that_only_look_reserved_stay_as_they_are():
    from catalog.site.addresses import key_slug

    for name in ("console", "nul-byte", "com10", "auxiliary", "lpt"):
        assert not is_reserved_name(name) and slugify(name) == name and key_slug(name) == name


# --- spreadsheet cells ----------------------------------------------------------------------------


def test_csv_cells_that_could_start_a_formula_are_quoted(tmp_path):
    from catalog.attack import load_knowledge
    from catalog.site.exports import techniques_csv

    starts = [" =1+1", "\t=1+1", "\r=1+1", "\n=1+1", "＝1+1", "|calc", ";=1", "=1", "+1", "-1", "@SUM(A1)"]
    rules = tmp_path / "rules"
    rules.mkdir()
    for number, start in enumerate(starts):
        title = start.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")
        (rules / f"r{number}.yml").write_text(rule(f'"{title}"', number), encoding="utf-8")
    (rules / "plain.yml").write_text(rule("Plain title", 99), encoding="utf-8")
    catalog = build_catalog([str(rules)], load_knowledge())
    rows = list(csv.DictReader(io.StringIO(techniques_csv(catalog).decode("utf-8"), newline="")))
    titles = {row["title"] for row in rows}
    assert titles == {"'" + start for start in starts} | {"Plain title"}


# --- duplicate ids on the Changes page -------------------------------------------------------------


def test_a_copy_with_the_same_id_is_a_duplicate_not_a_rename(tmp_path):
    from catalog.diff import diff_catalogs

    base, head = tmp_path / "base", tmp_path / "head"
    base.mkdir()
    head.mkdir()
    original = rule("Original", 1, "orig.exe")
    (base / "b.yml").write_text(original, encoding="utf-8")
    (head / "b.yml").write_text(original, encoding="utf-8")
    (head / "a.yml").write_text(original.replace("Original", "Copy"), encoding="utf-8")  # sorts first
    names = {str(base): "rules", str(head): "rules"}
    changes = diff_catalogs(build_catalog([str(base)]), build_catalog([str(head)]), names, names)
    assert [(change.kind, change.new_path, change.same_id_as) for change in changes] == [("added", "rules/a.yml", ("rules/b.yml",))]
    assert "duplicate id: also the id of rules/b.yml" in changes[0].summary()


# --- nothing of the build machine in the site -----------------------------------------------------


def test_two_checkouts_at_different_paths_build_byte_identical_sites(tmp_path):
    checkouts = [tmp_path / "a" / "catalog", tmp_path / "b" / "somewhere" / "much" / "deeper"]
    for root in checkouts:
        shutil.copytree(PROJECT / "rules", root / "rules")
        shutil.copytree(PROJECT / "docs", root / "docs")
        config = (PROJECT / "mkdocs.yml").read_text(encoding="utf-8").replace("\nstrict: true\n", "\nstrict: false\n")
        (root / "mkdocs.yml").write_text(config, encoding="utf-8")
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "docs", "mkdocs.yml")
        git(root, "commit", "-q", "-m", "no rules yet")
        # problems and messages that name files: a shared id and a file that is not YAML
        for twin in "xy":
            (root / "rules" / f"twin_{twin}.yml").write_text(rule(f"Twin {twin}", 7), encoding="utf-8")
        (root / "rules" / "broken.yml").write_text("title: [unclosed\n", encoding="utf-8")
    sites = []
    for root in checkouts:
        result = catalog_build(root, "--base", "HEAD", "--site-dir", "site")
        assert result.returncode == 0, result.stderr[-3000:]
        sites.append(tree(root / "site"))
    first, second = sites
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []
    for name, data in first.items():
        assert str(tmp_path).encode() not in data, name
    problems = first["problems/index.html"].decode("utf-8")
    assert "rules/broken.yml" in problems and "(rules/twin_y.yml)" in problems
    assert first["changes/index.html"].count(b"Duplicate id</p>") == 2


# --- a failed build keeps the previous site --------------------------------------------------------


def test_a_failed_build_leaves_the_previous_site_intact(tmp_path):
    root = project(tmp_path / "project", {"good.yml": rule("Good", 1)})
    result = catalog_build(root, "--site-dir", "site")
    assert result.returncode == 0, result.stderr[-3000:]
    before = tree(root / "site")
    assert "rules/5d0c1a3e-0000-4000-8000-000000000001/index.html" in before
    (root / "rules" / "bad.yml").write_text("title: [unclosed\n", encoding="utf-8")
    failed = catalog_build(root, "--strict", "--site-dir", "site")
    assert failed.returncode == 1 and "bad.yml" in failed.stderr
    assert tree(root / "site") == before
    assert sorted(path.name for path in root.iterdir()) == [".cache", "docs", "mkdocs.yml", "rules", "site"]
    # and a build that succeeds replaces the site
    (root / "rules" / "bad.yml").unlink()
    (root / "rules" / "new.yml").write_text(rule("New", 2), encoding="utf-8")
    assert catalog_build(root, "--strict", "--site-dir", "site").returncode == 0
    assert (root / "site" / "rules" / "5d0c1a3e-0000-4000-8000-000000000002" / "index.html").is_file()
    assert sorted(path.name for path in root.iterdir()) == [".cache", "docs", "mkdocs.yml", "rules", "site"]


# --- one page that cannot be made costs that page only ---------------------------------------------


def build_in_process(root: Path) -> Path:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    config = load_config(config_file=str(root / "mkdocs.yml"), site_dir=str(root / "site"))
    config.plugins.on_startup(command="build", dirty=False)
    build(config)
    return root / "site"


BREAKS, KEEPS = "5d0c1a3e-0000-4000-8000-000000000001", "5d0c1a3e-0000-4000-8000-000000000002"


@contextlib.contextmanager
def logged(level: int) -> Iterator[list[str]]:
    """The plugin's log messages at `level` and above while the block runs."""
    records: list[str] = []
    handler = logging.Handler(level)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("mkdocs.plugins.sigma_catalog")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_a_failure_making_one_rule_page_is_listed_and_the_rest_builds(tmp_path, monkeypatch):
    from catalog.site import rule_page

    original = rule_page.rule_page

    def failing(data, entry):
        if entry.document.title == "Breaks":
            raise RuntimeError("page model exploded")
        return original(data, entry)

    monkeypatch.setattr(rule_page, "rule_page", failing)
    site = build_in_process(project(tmp_path, {"breaks.yml": rule("Breaks", 1), "keeps.yml": rule("Keeps", 2)}))
    broken = (site / "rules" / BREAKS / "index.html").read_text(encoding="utf-8")
    assert "This page could not be built" in broken and "page model exploded" in broken
    assert "rules/breaks.yml:" in broken
    problems = (site / "problems" / "index.html").read_text(encoding="utf-8")
    assert "[internal-error]" in problems or "internal-error" in problems
    assert "building this document&#39;s page failed: RuntimeError: page model exploded" in problems
    keeps = (site / "rules" / KEEPS / "index.html").read_text(encoding="utf-8")
    assert "Keeps" in keeps and "could not be built" not in keeps


def test_a_failure_rendering_one_page_costs_that_page_only(tmp_path, monkeypatch):
    from catalog.site.render import Renderer

    original = Renderer.render

    def failing(self, template, path, context):
        if template == "rule.html" and context["title"] == "Breaks":
            raise ValueError("template exploded")
        return original(self, template, path, context)

    monkeypatch.setattr(Renderer, "render", failing)
    with logged(logging.ERROR) as records:
        site = build_in_process(project(tmp_path, {"breaks.yml": rule("Breaks", 1), "keeps.yml": rule("Keeps", 2)}))
    broken = (site / "rules" / BREAKS / "index.html").read_text(encoding="utf-8")
    assert "This page could not be built" in broken and "template exploded" in broken
    assert any(f"rules/{BREAKS}/ (Breaks): rendering this page failed: ValueError: template exploded" in record
               and "[internal-error]" in record for record in records), records
    keeps = (site / "rules" / KEEPS / "index.html").read_text(encoding="utf-8")
    assert "Keeps" in keeps and "could not be built" not in keeps


# --- mkdocs serve with a bad file ------------------------------------------------------------------


def fetch(url: str, deadline: float, wanted: str | None = None) -> str:
    """The page at `url` once it answers (and holds `wanted`), polling until `deadline`."""
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                last = response.read().decode("utf-8", "replace")
                if wanted is None or wanted in last:
                    return last
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer{' with ' + wanted if wanted else ''} in time (last: {last[:300]!r})")


def test_serve_keeps_answering_with_a_bad_file(tmp_path):
    root = project(tmp_path, {"good.yml": rule("Good", 1), "loop.yml": "title: &x [*x]\n"})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "mkdocs", "serve", "-a", f"127.0.0.1:{port}"], cwd=root,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        assert "Good" in fetch(base + f"rules/{BREAKS}/", deadline)
        assert "loop.yml" in fetch(base + "problems/", deadline, "recursive-alias")
        # a second bad file and a new rule while serving: the rebuild lists one and shows the other
        (root / "rules" / "merge.yml").write_text("pick: &self {<<: *self}\n", encoding="utf-8")
        (root / "rules" / "later.yml").write_text(rule("Later", 2), encoding="utf-8")
        assert "Later" in fetch(base + f"rules/{KEEPS}/", time.monotonic() + 120)
        assert "merge.yml" in fetch(base + "problems/", time.monotonic() + 60, "merge.yml")
        assert process.poll() is None
    finally:
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
    assert "Traceback" not in stderr, stderr[-3000:]


def test_a_rule_folder_given_by_absolute_path_is_shown_by_its_name(tmp_path):
    root = project(tmp_path / "project", {"good.yml": rule("Good", 1), "broken.yml": "title: [unclosed\n"})
    config = root / "mkdocs.yml"
    config.write_text(config.read_text(encoding="utf-8").replace("- path: rules", f"- path: {root / 'rules'}"), encoding="utf-8")
    result = catalog_build(root, "--site-dir", "site")
    assert result.returncode == 0, result.stderr[-3000:]
    site = tree(root / "site")
    assert [name for name, data in site.items() if str(tmp_path).encode() in data] == []
    assert "<code>rules/broken.yml:" in site["problems/index.html"].decode("utf-8")


def test_pages_rendered_in_parallel_survive_a_worker_that_dies(tmp_path, monkeypatch):
    """`render_all` (mkdocs build): forked workers and the building process share the pages; what
    a worker that died left unfinished is rendered by the building process, and a page that fails
    in a worker is reported by the building process."""
    from catalog.site import rendering
    from catalog.site.model import Page
    from catalog.site.render import Renderer, fallback_frame

    building = os.getpid()
    original = Renderer.render

    def render(self, template, path, context):
        if os.getpid() != building and context["title"] == "Dies":
            os._exit(3)  # a worker killed while rendering (as by the OOM killer)
        if context["title"] == "Fails" and context["location"] == "x":  # (not its error page)
            raise ValueError("template exploded")
        return original(self, template, path, context)

    monkeypatch.setattr(Renderer, "render", render)
    monkeypatch.setattr(rendering, "_PARALLEL_MINIMUM", 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)  # two workers and the building process
    titles = ["Dies" if n == 60 else "Fails" if n == 10 else f"Page {n}" for n in range(150)]
    pages = [Page(f"p/{n}/", title, "page_error.html", {"title": title, "location": "x", "message": "m"})
             for n, title in enumerate(titles)]
    with logged(logging.WARNING) as records:
        # the building process is busy with the exports first: the workers take the first ranges
        count = rendering.render_all(pages, Renderer(), fallback_frame("Test", "frame/"), tmp_path, meanwhile=lambda: time.sleep(1))
    assert count == 150
    for number, title in enumerate(titles):
        html = (tmp_path / "p" / str(number) / "index.html").read_text(encoding="utf-8")
        assert f"<h1>{title}</h1>" in html or (title == "Fails" and "template exploded" in html)
    assert any("a page rendering process ended early (exit code 3)" in record for record in records), records
    assert any("p/10/ (Fails): rendering this page failed: ValueError: template exploded" in record for record in records), records
