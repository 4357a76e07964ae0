"""Two builds of the same input give byte-identical sites (docs/review.md, "Reproducible builds").

The builds run as separate `catalog build` processes with different hash seeds (set and dict order
must not leak into the output), one with a cold and one with a warm plugin cache, in a git copy of
this repository's catalog (its mkdocs.yml with the site_url from SITE_URL, as the Pages workflow
sets it, so the sitemap has dates and a gzip copy).
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from xml.etree import ElementTree
from pathlib import Path

import pytest

from conftest import PROJECT
from conftest import git as run_git

COMMIT_TIME = "2026-03-04T05:06:07Z"
SITE_URL = "https://rules.example.org/catalog/"  # the copy's only commit: its time is the build date


def git(repo: Path, *args: str) -> str:
    return run_git(repo, *args, date=COMMIT_TIME)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("project")
    shutil.copytree(PROJECT / "rules", copy / "rules")
    shutil.copytree(PROJECT / "docs", copy / "docs")
    config = (PROJECT / "mkdocs.yml").read_text(encoding="utf-8")
    config = config.replace("\nstrict: true\n", "\nstrict: false\n")  # docs pages missing from nav are not our subject here
    (copy / "mkdocs.yml").write_text(config, encoding="utf-8")  # its site_url comes from SITE_URL (see `build`)
    git(copy, "init", "-q", "-b", "main")
    git(copy, "add", "-A")
    git(copy, "commit", "-q", "-m", "snapshot")
    return copy


def build(project: Path, site: Path, seed: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "SOURCE_DATE_EPOCH"}
    env.update(PYTHONHASHSEED=seed, CATALOG_CACHE_DIR=str(project / ".attack-cache"), SITE_URL=SITE_URL, **(extra_env or {}))
    return subprocess.run(
        [sys.executable, "-m", "catalog.cli", "build", "--site-dir", str(site)],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )


def tree(site: Path) -> dict[str, bytes]:
    return {path.relative_to(site).as_posix(): path.read_bytes() for path in sorted(site.rglob("*")) if path.is_file()}


def test_two_builds_are_byte_identical(project, tmp_path):
    first = build(project, tmp_path / "a", "1")
    assert first.returncode == 0, first.stderr
    second = build(project, tmp_path / "b", "2")  # warm plugin cache, other hash seed
    assert second.returncode == 0, second.stderr
    shutil.rmtree(project / ".cache")
    third = build(project, tmp_path / "c", "3")  # cold cache again
    assert third.returncode == 0, third.stderr
    a, b, c = tree(tmp_path / "a"), tree(tmp_path / "b"), tree(tmp_path / "c")
    assert len(a) > 100
    assert sorted(a) == sorted(b) == sorted(c)
    differ = [name for name in a if not (a[name] == b[name] == c[name])]
    assert differ == [], f"files that differ between builds: {differ[:20]}"

    # the dates in it are the commit's, not the clock's
    sitemap = a["sitemap.xml"].decode("utf-8")
    assert "<lastmod>2026-03-04</lastmod>" in sitemap
    assert gzip.decompress(a["sitemap.xml.gz"]).decode("utf-8") == sitemap
    assert a["sitemap.xml.gz"][4:8] == b"\0\0\0\0"  # gzip header mtime: zero, not the build time

    # SITE_URL made the canonical links and a whole, valid sitemap (every rule page, not the frame page)
    locations = [url.findtext("{http://www.sitemaps.org/schemas/sitemap/0.9}loc") for url in ElementTree.fromstring(sitemap)]
    rule_pages = sorted(name[: -len("index.html")] for name in a if name.startswith("rules/") and name.endswith("/index.html") and name.count("/") == 2)
    assert rule_pages and {SITE_URL + page for page in rule_pages} <= set(locations)
    assert not [location for location in locations if "frame" in location]
    assert f'<link rel="canonical" href="{SITE_URL}{rule_pages[0]}">'.encode() in a[rule_pages[0] + "index.html"]


def test_source_date_epoch_wins(project, tmp_path):
    result = build(project, tmp_path / "d", "4", {"SOURCE_DATE_EPOCH": "0"})
    assert result.returncode == 0, result.stderr
    assert "<lastmod>1970-01-01</lastmod>" in (tmp_path / "d" / "sitemap.xml").read_text(encoding="utf-8")

    # every file is readable by others (a web server running as another user): none is private,
    # as the temporary files they were written through are
    private = [path.relative_to(tmp_path / "a").as_posix() for path in (tmp_path / "a").rglob("*")
               if path.is_file() and not path.stat().st_mode & 0o044]
    assert private == []
