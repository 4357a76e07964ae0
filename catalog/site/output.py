"""Writing the site: the rule load cache, our pages (all of them by `rendering.render_all`, or through
the page cache under `mkdocs serve`), redirects, the sitemap, and exports written after a serve build.

Everything here lives as long as the plugin object, i.e. across the rebuilds of one `mkdocs serve`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterable

from catalog import pipeline
from catalog.loader import LoadResult, discover, load_file
from catalog.site.addresses import FRAME_PATH, SEARCH_INDEX, is_rule_path, is_safe_page_path, page_href
from catalog.site.exports import FILE_MODE, ExportFile, write_if_different
from catalog.site.model import Page
from catalog.site.render import TEMPLATES, Frame, Renderer
from catalog.site.rendering import page_html, render_all, report_failures, write_index
from catalog.site.search import gzipped_size

log = logging.getLogger("mkdocs.plugins.sigma_catalog")

#: Bump when the layout of the page cache changes.
CACHE_VERSION = "1"


class LoadCache:
    """`catalog.loader.load` that re-reads only rule files whose size, mtime or inode changed."""

    def __init__(self) -> None:
        self._files: dict[tuple[str, str], tuple[tuple[int, int, int] | None, list, list]] = {}
        self.read = 0

    def load(self, roots, each: Callable[[list], None] = lambda documents: None) -> LoadResult:
        """`each` is called with every file's documents as soon as the file is read (or reused)."""
        result = LoadResult()
        result.files, result.problems = discover(roots)
        current = {}
        self.read = 0
        for rule_file in result.files:
            key = (rule_file.root, rule_file.relative)
            try:
                stat = os.stat(rule_file.location)
                stamp: tuple[int, int, int] | None = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            except OSError:
                stamp = None
            cached = self._files.get(key)
            if stamp is not None and cached is not None and cached[0] == stamp:
                documents, problems = cached[1], cached[2]
            else:
                documents, problems = load_file(rule_file)
                self.read += 1
            current[key] = (stamp, documents, problems)
            each(documents)
            result.documents.extend(documents)
            result.problems.extend(problems)
        self._files = current
        return result


def write_if_changed(path: Path, data: bytes, made: set[Path] | None = None) -> bool:
    """Write `data` unless the file already holds exactly it (keeps its mtime for --dirty builds).
    A file that is there is replaced whole (a served site never shows half of it); a new one is
    written in place (most files of a build: a temporary file each cost a third of the writing).
    `made`: folders known to exist (see _ensure_dir)."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
        exists = True
    except OSError:
        exists = False
    if made is None:
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        _ensure_dir(path.parent, made)
    if not exists:
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:  # made meanwhile: replace it as below
            pass
        else:
            with open(descriptor, "wb") as out:
                out.write(data)
            return True
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=".tmp-", delete=False) as out:
        out.write(data)
    os.chmod(out.name, FILE_MODE)
    os.replace(out.name, path)
    return True


def _code_digest() -> str:
    """What rendered pages depend on besides their data: the templates and the code that fills them."""
    sha = hashlib.sha256(CACHE_VERSION.encode())
    for path in sorted(TEMPLATES.rglob("*")) + sorted(Path(__file__).parent.glob("*.py")):
        if path.is_file():
            sha.update(path.name.encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()[:16]


class PageWriter:
    """Writes the pages the plugin makes itself (rule, technique, indicator... pages) and redirects."""

    def __init__(self) -> None:
        self.in_site: dict[str, str] = {}  # mkdocs serve: file in the site dir -> fingerprint, target or text written
        self._cache_ok: set[str] = set()  # page files known to be in cache_dir/html
        self._manifest: dict[str, str] | None = None  # page cache: path -> fingerprint (hex)
        self._written: dict[str, Page] = {}  # mkdocs serve: the pages of the last build, by path
        self._salted: dict[str, str] = {}  # ... and their fingerprints with `_salt` (the frame, the code)
        self._salt = b""
        self._code = _code_digest()

    def write(self, pages: list[Page], redirects: dict[str, str], files: dict[str, str], taken: set[str], renderer: Renderer,
              frame: Frame, site_dir: Path, cache: Path | None, meanwhile: Callable[[], None] = lambda: None) -> tuple[int, int]:
        """Every page, redirect and text file (the rule files served with their pages) not in the way
        of a docs page; with `cache` (mkdocs serve), through the page cache. `meanwhile` runs while
        the pages are rendered. Returns (pages rendered, pages written)."""
        current = {page.path + "index.html" for page in pages}

        def write_the_rest() -> None:
            self._write_redirects(redirects, taken, current, renderer, site_dir, remember=cache is not None)
            self._write_files(files, taken, current, site_dir, remember=cache is not None)
            meanwhile()

        if cache is not None:
            rendered, written = self._write_cached(pages, renderer, frame, site_dir, cache)
            write_the_rest()
        else:  # the rest is written while the rendering processes work (this one would only wait)
            rendered = written = render_all(pages, renderer, frame, site_dir, meanwhile=write_the_rest)
        # what earlier builds of this `mkdocs serve` wrote that is gone now (a rule was deleted)
        for relative in [r for r in self.in_site if r not in current]:
            (site_dir / relative).unlink(missing_ok=True)
            del self.in_site[relative]
        return rendered, written

    def _write_files(self, files: dict[str, str], taken: set[str], current: set[str], site_dir: Path, remember: bool) -> None:
        made: set[Path] = set()
        for relative, text in files.items():
            if relative in taken:
                continue
            current.add(relative)
            if remember:  # mkdocs serve: only what changed (an unchanged rule's text is the very same object)
                if self.in_site.get(relative) == text:
                    continue
                self.in_site[relative] = text
            write_if_changed(site_dir / relative, text.encode("utf-8"), made)

    def _write_redirects(self, redirects: dict[str, str], taken: set[str], current: set[str], renderer: Renderer,
                         site_dir: Path, remember: bool) -> None:
        made: set[str] = set()
        site = str(site_dir)
        for path, target in redirects.items():
            relative = path + "index.html"
            if relative in taken or relative in current or not is_safe_page_path(path):
                continue
            current.add(relative)
            if self.in_site.get(relative) == target:
                continue
            write_index(site, path, renderer.render("redirect.html", path, {"target": target}).encode("utf-8"), made)
            if remember:
                self.in_site[relative] = target

    def _write_cached(self, pages: list[Page], renderer: Renderer, frame: Frame, site_dir: Path, cache: Path) -> tuple[int, int]:
        """`mkdocs serve`: render only pages whose data changed (a fingerprint of it, the frame and
        the templates) into `cache/html`, and copy to the site only what it does not have yet.
        The site is emptied before each rebuild unless --dirty, so unchanged pages come from the
        cache instead of being rendered again."""
        frame_key = hashlib.sha256(("\0".join(frame.head) + "\0" + frame.tail).encode("utf-8")).digest()
        salt = hashlib.sha256(frame_key + self._code.encode() + str(renderer.directory_urls).encode()).digest()
        cache_root = cache / "html"
        manifest = self._load_manifest(cache_root)
        rendered = copied = 0
        current: set[str] = set()
        made: set[Path] = set()
        failures: list[str] = []
        earlier, self._written = self._written, {}
        salted, self._salted = (self._salted if salt == self._salt else {}), {}
        self._salt = salt
        for page in pages:
            relative = page.path + "index.html"
            current.add(relative)
            before = earlier.get(page.path)
            if before is page and page.path in salted:  # a page the last build had (a rule's, an unchanged list)
                fingerprint = salted[page.path]
            else:
                if before is not None:
                    page.take_fingerprint(before)
                fingerprint = hashlib.blake2b(salt + page.fingerprint(), digest_size=16).hexdigest()
            self._written[page.path] = page
            self._salted[page.path] = fingerprint
            if self.in_site.get(relative) == fingerprint == manifest.get(page.path) and relative in self._cache_ok:
                continue  # in the site and in the cache already (most pages of a serve update)
            cached = cache_root / relative
            if manifest.get(page.path) != fingerprint or (relative not in self._cache_ok and not cached.exists()):
                _ensure_dir(cached.parent, made)
                failed = len(failures)
                cached.write_bytes(page_html(page, renderer, frame, failures))
                if len(failures) == failed:  # a page that failed is tried (and reported) again next time
                    manifest[page.path] = fingerprint
                rendered += 1
            self._cache_ok.add(relative)  # in the cache, as the manifest says (checked once per process)
            if self.in_site.get(relative) == fingerprint:
                continue
            target = site_dir / relative
            _ensure_dir(target.parent, made)
            shutil.copyfile(cached, target)
            self.in_site[relative] = fingerprint
            copied += 1
        gone = [p for p in manifest if p + "index.html" not in current]
        for path in gone:
            (cache_root / path / "index.html").unlink(missing_ok=True)
            del manifest[path]
        if rendered or gone:
            write_if_changed(cache_root / "manifest.json",
                             json.dumps({"version": CACHE_VERSION, "pages": manifest}, sort_keys=True).encode())
        report_failures(failures)
        return rendered, copied

    def _load_manifest(self, cache_root: Path) -> dict[str, str]:
        if self._manifest is None:
            try:
                data = json.loads((cache_root / "manifest.json").read_text(encoding="utf-8"))
                self._manifest = {str(k): str(v) for k, v in data.get("pages", {}).items()} if data.get("version") == CACHE_VERSION else {}
            except (OSError, ValueError, AttributeError):
                self._manifest = {}
        return self._manifest


def _ensure_dir(path: Path, made: set[Path]) -> None:
    if path not in made:
        path.mkdir(parents=True, exist_ok=True)
        made.add(path)


def finish_sitemap(site_dir: Path, frame_url: str | None, pages: Iterable[Page], directory_urls: bool, theirs: str | None) -> None:
    """Remove the frame page from the site and the sitemap; list our rule pages in the sitemap.
    `theirs`: MkDocs' sitemap of the build (a serve update starts again from the last build's);
    the files are written only when the result differs from what the site has."""
    frame_file = site_dir / FRAME_PATH / "index.html"
    if frame_file.is_file():
        frame_file.unlink()
        for folder in (frame_file.parent, frame_file.parent.parent):
            try:
                folder.rmdir()
            except OSError:
                break
    sitemap = site_dir / "sitemap.xml"
    if theirs is None or not frame_url:
        return
    # the frame's own <url> element goes (only it: it may be the last one, right before </urlset>)
    new = re.sub(r"<url>\s*<loc>" + re.escape(frame_url) + r"</loc>.*?</url>\s*", "", theirs, flags=re.S)
    frame_href = page_href(FRAME_PATH, directory_urls)
    if frame_url.endswith(frame_href) and "</urlset>" in new:
        base = frame_url[: -len(frame_href)]
        extra = "".join(
            f"<url>\n         <loc>{base}{page_href(page.path, directory_urls)}</loc>\n    </url>\n    "
            for page in pages
            if is_rule_path(page.path)
        )
        new = new.replace("</urlset>", extra + "</urlset>")
    if new != read_sitemap(site_dir):
        sitemap.write_text(new, encoding="utf-8")
        gz = site_dir / "sitemap.xml.gz"
        if gz.is_file():
            import gzip

            with gzip.GzipFile(str(gz), "wb", mtime=0) as stream:
                stream.write(new.encode("utf-8"))


def read_sitemap(site_dir: Path) -> str | None:
    try:
        return (site_dir / "sitemap.xml").read_text(encoding="utf-8")
    except OSError:
        return None


def _copy_from(source: Path, out) -> None:
    with source.open("rb") as data:
        shutil.copyfileobj(data, out)


def write_export(site_dir: Path, export: ExportFile) -> None:
    """One export into the site: copied from the file it was streamed to, or written from its bytes."""
    if export.source is not None:
        write_if_different(site_dir / export.path, functools.partial(_copy_from, export.source))
    else:
        write_if_changed(site_dir / export.path, export.data)


class DeferredExports:
    """`mkdocs serve`: catalog.json, the CSV and the search index written after the build, in the
    background, so that an edited rule shows sooner."""

    def __init__(self) -> None:
        self.pending: Callable[[], list[ExportFile]] | None = None  # what this build's exports are made by
        self._thread: threading.Thread | None = None

    def start(self, site_dir: Path) -> None:
        make, self.pending = self.pending, None
        if make is None:
            return

        def write() -> None:
            try:
                with pipeline.collector_paused():
                    for export in make():
                        write_export(site_dir, export)
            except Exception as error:  # a thread: report, do not lose it
                log.error("sigma-catalog: writing catalog.json, the CSV and the search index failed: %s", error)

        self._thread = threading.Thread(target=write, name="sigma-catalog exports", daemon=True)
        self._thread.start()

    def write_now(self, site_dir: Path) -> None:
        """`mkdocs build`: write them here and now (while the pages are rendered by other processes)."""
        make, self.pending = self.pending, None
        if make is None:
            return
        for export in make():
            write_export(site_dir, export)
            # (compressed for this line only: not under -q, which hides it)
            if export.path == SEARCH_INDEX and export.data is not None and log.isEnabledFor(logging.INFO):
                log.info("sigma-catalog: search index %.1f KB (%.1f KB gzipped)", len(export.data) / 1024, gzipped_size(export.data) / 1024)

    def wait(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
