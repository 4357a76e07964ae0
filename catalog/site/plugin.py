"""The `sigma-catalog` MkDocs plugin: a Sigma rule repository as pages of the MkDocs site.

How a build goes (public plugin API of MkDocs 1.6 only; ProperDocs runs it unchanged):

- `on_config`: resolve the rule folders, ATT&CK data and cache folder (relative to mkdocs.yml);
  add our stylesheet and script to the theme's `extra_css` / `extra_javascript`.
- `on_files`: run the catalog pipeline, build the site model (`pages.SiteBuilder`), write the
  exports and the search index, and add to the build: the browse pages (Markdown stubs in the
  build cache, rewritten only when their content changes, so `--dirty` rebuilds skip the others),
  the export files, our assets, and one hidden "frame" page.
- `on_nav`: put the browse pages in the navigation, after the home page. Rule pages stay out of it.
- `on_page_content`: the browse pages get their HTML from our templates (no Markdown); the frame
  page gets a marker; the home page gets the catalog figures.
- `on_post_page`: capture the theme's rendering of the frame page: the header, navigation and
  footer (stylesheets, palette, scripts) that every page we write ourselves shares.
- `on_post_build`: write the thousands of rule, technique, indicator... pages: our template
  renders the content, the captured frame wraps it. `mkdocs build` renders them in worker
  processes; `mkdocs serve` keeps rendered pages in `cache_dir/html` under a fingerprint of their
  data and renders again only what changed.
- `on_serve`: watch the rule folders.

Under `mkdocs serve` the plugin object lives across rebuilds (it defines `on_startup`), and so do
its caches: rule files that did not change are not parsed again (the pipeline takes our loader,
and remembers their analyses), rule pages and catalog.json records whose inputs did not change are reused.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal

import jinja2
from mkdocs.config import base
from mkdocs.config import config_options as c
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, event_priority
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.nav import Navigation
from mkdocs.structure.pages import Page as MkDocsPage

from catalog import pipeline
from catalog.loader import LoadResult, discover, load_file
from catalog.site import pages as site_pages
from catalog.site.exports import ExportFile, data_exports, navigator_layers
from catalog.site.pages import ASSETS, FRAME_PATH, FRAME_SRC_URI, SEARCH_INDEX, Folder, SiteBuilder
from catalog.site.render import (
    CONTENT_MARKER,
    DESCRIPTION_MARKER,
    TEMPLATES,
    TITLE_MARKER,
    Frame,
    Renderer,
    fallback_frame,
    page_href,
)
from catalog.site.search import gzipped_size, search_index

log = logging.getLogger("mkdocs.plugins.sigma_catalog")

ASSET_DIR = Path(__file__).parent / "assets"
STYLESHEET = ASSETS + "sigma-catalog.css"
SCRIPT = ASSETS + "sigma-catalog.js"
#: Where a user's home page (docs/index.md) receives the catalog figures; appended when absent.
HOME_MARKER = "<!-- sigma-catalog:home -->"
#: Bump when the layout of the page cache changes.
CACHE_VERSION = "1"
_SAFE_PAGE_PATH = re.compile(r"[a-z0-9-]+/(?:[a-z0-9-]+/)?")


class RuleFolderConfig(base.Config):
    """One entry of `rules`: a folder path, or a mapping with a display name and a source URL."""

    path = c.Type(str)
    name = c.Optional(c.Type(str))
    source_url = c.Optional(c.URL())

    def validate(self):
        failed, warnings = super().validate()
        url = self.get("source_url")
        if url and not url.lower().startswith(("http://", "https://")):
            failed.append(("source_url", c.ValidationError("must be an http:// or https:// URL")))
        return failed, warnings


class _RuleFolderOption(c.SubConfig[RuleFolderConfig]):
    """Accepts `- rules` as shorthand for `- path: rules`."""

    def run_validation(self, value: object) -> RuleFolderConfig:
        if isinstance(value, str):
            value = {"path": value}
        if not isinstance(value, dict):
            raise c.ValidationError(f"a rule folder is a path or a mapping with 'path', not {type(value).__name__}")
        return super().run_validation(value)


class CatalogConfig(base.Config):
    rules = c.ListOfItems(_RuleFolderOption(), default=["rules"])
    """Rule folders: paths (relative to mkdocs.yml) or mappings {path, name, source_url}."""
    attack_data = c.Optional(c.Type(str))
    """A local ATT&CK Enterprise STIX bundle (.json, .json.xz, .json.gz) or a mitre/cti folder."""
    strict = c.Type(bool, default=False)
    """Fail the build, listing every rule error, when a rule file has errors."""
    base = c.Optional(c.Type(str))
    """A git revision to compare the rules with (change preview)."""
    cache_dir = c.Type(str, default=".cache/sigma-catalog")
    """The build cache (generated page sources, rendered pages, exports), relative to mkdocs.yml."""


class _LoadCache:
    """`catalog.loader.load` that re-reads only rule files whose size, mtime or inode changed.

    Lives as long as the plugin object, i.e. across the rebuilds of one `mkdocs serve`.
    """

    def __init__(self) -> None:
        self._files: dict[tuple[str, str], tuple[tuple[int, int, int] | None, list, list]] = {}
        self.read = 0

    def load(self, roots) -> LoadResult:
        result = LoadResult()
        result.files, result.problems = discover(roots)
        current = {}
        self.read = 0
        for rule_file in result.files:
            key = (rule_file.root, rule_file.relative)
            try:
                stat = rule_file.path.stat()
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
            result.documents.extend(documents)
            result.problems.extend(problems)
        self._files = current
        return result


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` unless the file already holds exactly it (keeps its mtime for --dirty builds)."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=".tmp-", delete=False) as out:
        out.write(data)
    os.replace(out.name, path)
    return True


def _templates_digest() -> str:
    sha = hashlib.sha256(CACHE_VERSION.encode())
    for path in sorted(TEMPLATES.rglob("*")) + [Path(site_pages.__file__), Path(__file__).with_name("render.py")]:
        if path.is_file():
            sha.update(path.name.encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()[:16]


class CatalogPlugin(BasePlugin[CatalogConfig]):
    """Builds the Sigma catalog's pages inside the MkDocs build."""

    def __init__(self) -> None:
        self._loads = _LoadCache()
        self._in_site: dict[str, str] = {}  # mkdocs serve: file in the site dir -> fingerprint (or target) written
        self._cache_ok: set[str] = set()  # page files known to be in cache_dir/html
        self._manifest: dict[str, str] | None = None  # page cache: path -> fingerprint (hex)
        self._templates = _templates_digest()
        self._command = "build"
        self._dirty = False
        self._memo_signature: tuple | None = None
        self._page_memo: dict = {}  # mkdocs serve: rule pages of the last build (pages.SiteBuilder)
        self._json_memo: dict = {}  # mkdocs serve: catalog.json records of the last build
        self._deferred: tuple | None = None  # mkdocs serve: what the exports of this build are made from
        self._export_thread: threading.Thread | None = None

    # -- configuration -----------------------------------------------------------------------------

    def on_startup(self, *, command: Literal["build", "gh-deploy", "serve"], dirty: bool) -> None:
        # Defining on_startup keeps this object across the rebuilds of `mkdocs serve`: the caches stay.
        self._command = command
        self._dirty = dirty

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig:
        home = Path(config.config_file_path).parent if config.config_file_path else Path.cwd()
        docs_dir = Path(config.docs_dir).resolve()
        self._folders: list[Folder] = []
        for folder in self.config.rules:
            path = (home / folder.path).resolve()
            if not path.exists():
                raise PluginError(f"sigma-catalog: the rule folder '{folder.path}' does not exist ({path})")
            self._folders.append(Folder(str(path), folder.path.rstrip("/") or ".", folder.name, folder.source_url))
        self._attack_data = None
        if self.config.attack_data:
            self._attack_data = (home / self.config.attack_data).resolve()
            if not self._attack_data.exists():
                raise PluginError(f"sigma-catalog: attack_data '{self.config.attack_data}' does not exist ({self._attack_data})")
        self._cache = (home / self.config.cache_dir).resolve()
        if self._cache == docs_dir or docs_dir in self._cache.parents:
            raise PluginError(f"sigma-catalog: cache_dir '{self.config.cache_dir}' must be outside docs_dir")
        site_dir = Path(config.site_dir).resolve()
        if self._cache == site_dir or site_dir in self._cache.parents:
            raise PluginError(f"sigma-catalog: cache_dir '{self.config.cache_dir}' must be outside site_dir")
        for asset, extra in ((STYLESHEET, config.extra_css), (SCRIPT, config.extra_javascript)):
            if asset not in [str(item) for item in extra]:
                extra.append(asset)
        if getattr(self, "_renderer", None) is None or self._renderer.directory_urls != config.use_directory_urls:
            self._renderer = Renderer(config.use_directory_urls)  # kept across serve rebuilds: templates compile once
        self._frame: Frame | None = None
        self._home_html: str | None = None
        return config

    # -- the catalog and its pages -----------------------------------------------------------------

    @event_priority(50)  # before other plugins look at the files, so they see ours
    def on_files(self, files: Files, *, config: MkDocsConfig) -> Files:
        with pipeline.collector_paused():
            return self._on_files(files, config)

    def _on_files(self, files: Files, config: MkDocsConfig) -> Files:
        started = time.perf_counter()
        kb = self._knowledge()
        catalog = pipeline.build_catalog([folder.root for folder in self._folders], attack=kb, load=self._loads.load)
        loaded = time.perf_counter()
        serving = self._command == "serve"
        signature = (tuple(self._folders), config.site_name, str(self._attack_data), config.use_directory_urls, config.site_url)
        if signature != self._memo_signature:  # another configuration: nothing of the last build holds
            self._memo_signature, self._page_memo, self._json_memo = signature, {}, {}
        # (the change preview adds banners to rule pages: no page may be shared between its builds)
        builder = SiteBuilder(catalog, self._folders, kb, config.site_name,
                              memo=self._page_memo if serving and not self.config.base else None)
        if self.config.strict and catalog.errors:
            listing = "\n".join(f"  {builder.location(p)}: {p.message} [{p.code}]" for p in catalog.errors)
            raise PluginError(f"sigma-catalog: {len(catalog.errors)} rule errors (strict: true):\n{listing}")
        site = builder.build()
        timings = {"catalog": loaded - started, "site model": time.perf_counter() - loaded}
        # --- change preview (`base`, set by `catalog build --base REF`): catalog/changes.py ---
        if self.config.base:
            from catalog.changes import ChangeError, add_to_site, compute_changes

            try:
                changes = compute_changes([f.root for f in self._folders], self.config.base, kb, head=catalog,
                                          labels={f.root: f.display for f in self._folders})
            except ChangeError as error:
                raise PluginError(f"sigma-catalog: base '{self.config.base}': {error}") from error
            add_to_site(site, changes, builder.display_problem_path)
            log.info("sigma-catalog: changes against %s: %s", self.config.base,
                     ", ".join(f"{count} {kind}" for kind, count in changes.counts().items()))
        # --- end of change preview ---
        self._site = site
        self._catalog = catalog

        mark = time.perf_counter()
        layers = navigator_layers(catalog, kb, config.site_name, config.site_url, config.use_directory_urls)
        export_files: list[ExportFile] = list(layers)
        deferred = (catalog, builder, config.use_directory_urls)
        for path in (site_pages.CATALOG_JSON, site_pages.TECHNIQUES_CSV, SEARCH_INDEX):
            existing = files.get_file_from_path(path)
            if existing is not None and existing.generated_by is None:
                raise PluginError(f"sigma-catalog: docs/{path} is in the way of a file the catalog generates; rename it")
        if serving:
            # mkdocs serve: catalog.json, the CSV and the search index are written after the build,
            # in the background (_start_deferred_exports), so that an edited rule shows sooner
            self._deferred = deferred
            self.search_index_size = None
        else:
            self._deferred = None
            export_files.extend(_data_files(*deferred, self._json_memo if serving else None))
            self.search_index_size = (len(export_files[-1].data), gzipped_size(export_files[-1].data))
        exports = {
            "catalog_json": site_pages.CATALOG_JSON,
            "techniques_csv": site_pages.TECHNIQUES_CSV,
            "layers": [{"file": layer.path, "name": layer.label, "techniques": layer.techniques} for layer in layers],
            "schema_path": schema.url if (schema := files.get_file_from_path("json-schema.md")) else None,
        }
        for page in site.browse:
            if page.template in ("exports.html",):
                page.context.update(exports)
        home_context = dict(site.home, **exports)

        timings["exports"] = time.perf_counter() - mark
        mark = time.perf_counter()
        generated = self._cache / "files"
        for export in export_files:
            self._add_file(files, config, export.path, generated, export.data)
        for asset in sorted(ASSET_DIR.iterdir()):
            if asset.is_file():
                self._add_file(files, config, ASSETS + asset.name, None, source=asset)
        timings["writing exports"] = time.perf_counter() - mark
        mark = time.perf_counter()

        # the browse pages: MkDocs builds them (they are in the navigation) from stubs in the cache
        self._browse: dict[str, str] = {}
        self._browse_pages: list[str] = []
        self._titles: dict[str, str] = {}
        user_home = files.get_file_from_path("index.md")
        if user_home is None:
            site.browse.insert(0, site_pages.Page("", config.site_name, "home.html", dict(home_context, heading=config.site_name),
                                                  src_uri="index.md"))
            self._home_html = None
        else:
            self._home_html = self._renderer.render("home.html", "", home_context)
        for page in site.browse:
            html = self._renderer.render(page.template, page.path, page.context)
            meta = {"title": page.nav_title or page.title, "search": {"exclude": True}}
            if page.src_uri != "index.md":
                meta["hide"] = ["navigation", "toc"] if page.wide else ["toc"]
            digest = hashlib.sha256(html.encode("utf-8")).hexdigest()[:20]
            stub = f"---\n{json.dumps(meta)}\n---\n\n<!-- sigma-catalog: generated page {digest} -->\n"
            self._add_page(files, config, page.src_uri, stub)
            self._browse[page.src_uri] = html
            self._titles[page.src_uri] = meta["title"]
            if page.src_uri != "index.md":
                self._browse_pages.append(page.src_uri)

        timings["browse pages"] = time.perf_counter() - mark
        # the frame page: rendered by the theme, captured in on_post_page, removed in on_post_build
        frame_meta = {"title": TITLE_MARKER, "description": DESCRIPTION_MARKER, "hide": ["toc"], "search": {"exclude": True}}
        self._add_page(files, config, FRAME_SRC_URI, f"---\n{json.dumps(frame_meta)}\n---\n\nframe\n")
        self._taken = {file.dest_uri for file in files}

        errors = len(catalog.errors)
        log.info(
            "sigma-catalog: %d documents from %d files (%d read), %d errors, %d warnings (listed on errors/); %s; %s",
            len(catalog.entries), len(catalog.files), self._loads.read, errors, len(catalog.problems) - errors,
            "search index %.1f KB (%.1f KB gzipped)" % (self.search_index_size[0] / 1024, self.search_index_size[1] / 1024)
            if self.search_index_size else "catalog.json, CSV and search index written after the build",
            ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()),
        )
        for problem in catalog.problems:
            log.debug("%s: %s: %s [%s]", builder.location(problem), problem.severity.value, problem.message, problem.code)
        return files

    def _knowledge(self):
        try:
            from catalog.attack import AttackDataError, load_knowledge
        except ImportError as error:  # pragma: no cover - the package ships it
            raise PluginError(f"sigma-catalog: ATT&CK support is missing: {error}") from error
        try:
            return load_knowledge(self._attack_data)
        except AttackDataError as error:
            raise PluginError(f"sigma-catalog: {error}") from error

    def _add_file(self, files: Files, config: MkDocsConfig, src_uri: str, cache: Path | None, data: bytes | None = None,
                  source: Path | None = None) -> None:
        existing = files.get_file_from_path(src_uri)
        if existing is not None and existing.generated_by is None:
            raise PluginError(f"sigma-catalog: docs/{src_uri} is in the way of a file the catalog generates; rename it")
        if source is None:
            assert cache is not None and data is not None
            source = cache / src_uri
            _write_if_changed(source, data)
        files.append(File.generated(config, src_uri, abs_src_path=str(source)))

    def _add_page(self, files: Files, config: MkDocsConfig, src_uri: str, text: str) -> None:
        existing = files.get_file_from_path(src_uri)
        if existing is not None:
            raise PluginError(f"sigma-catalog: docs/{src_uri} is in the way of a page the catalog generates; rename it")
        source = self._cache / "pages" / src_uri
        _write_if_changed(source, text.encode("utf-8"))
        files.append(File.generated(config, src_uri, abs_src_path=str(source), inclusion=InclusionLevel.NOT_IN_NAV))

    def on_nav(self, nav: Navigation, *, config: MkDocsConfig, files: Files) -> Navigation:
        """The browse pages go into the navigation right after the home page (unless nav lists them)."""
        listed = {id(page) for page in nav.pages}
        ours = []
        for src_uri in self._browse_pages:
            file = files.get_file_from_path(src_uri)
            if file is not None and file.page is not None:
                # set here, not only read from the stub: `--dirty` rebuilds do not read unchanged stubs
                file.page.title = self._titles[src_uri]
                if id(file.page) not in listed:
                    ours.append(file.page)
        if not ours:
            return nav
        position = 0
        for index, item in enumerate(nav.items):
            if isinstance(item, MkDocsPage) and item.is_homepage:
                position = index + 1
                break
        nav.items[position:position] = ours
        home = nav.pages.index(nav.items[position - 1]) + 1 if position else 0
        nav.pages[home:home] = ours
        for previous, following in zip(nav.pages, nav.pages[1:]):
            previous.next_page, following.previous_page = following, previous
        return nav

    def on_env(self, env, *, config: MkDocsConfig, files: Files):
        # MkDocs makes a new theme environment for every build, so the theme's templates would be
        # compiled again on every `mkdocs serve` rebuild: keep their compiled form in the cache.
        if env.bytecode_cache is None:
            folder = self._cache / "jinja"
            folder.mkdir(parents=True, exist_ok=True)
            env.bytecode_cache = jinja2.FileSystemBytecodeCache(str(folder))
        return env

    def on_page_content(self, html: str, *, page: MkDocsPage, config: MkDocsConfig, files: Files) -> str:
        src_uri = page.file.src_uri
        if src_uri == FRAME_SRC_URI:
            return CONTENT_MARKER
        if src_uri in self._browse:
            return self._browse[src_uri]
        if src_uri == "index.md" and self._home_html is not None:
            if HOME_MARKER in html:
                return html.replace(HOME_MARKER, self._home_html, 1)
            return html + self._home_html
        return html

    def on_post_page(self, output: str, *, page: MkDocsPage, config: MkDocsConfig) -> str:
        if page.file.src_uri == FRAME_SRC_URI:
            try:
                self._frame = Frame.capture(output, FRAME_PATH)
            except ValueError as error:
                log.warning("sigma-catalog: cannot use the theme's page frame (%s); rule pages get a plain one", error)
            self._frame_url = page.canonical_url
        return output

    # -- our own pages -----------------------------------------------------------------------------

    def on_pre_build(self, *, config: MkDocsConfig) -> None:
        # Python's cyclic collector rescans the catalog's millions of objects again and again while
        # MkDocs and Jinja allocate: paused for the build, restored in on_post_build/on_build_error.
        self._collector_was_enabled = gc.isenabled()
        gc.disable()
        self._finish_deferred_exports()
        if not self._dirty:
            self._in_site.clear()  # MkDocs empties the site folder before a build that is not --dirty

    def on_post_build(self, *, config: MkDocsConfig) -> None:
        try:
            with pipeline.collector_paused():
                self._write_pages(config)
        finally:
            self._restore_collector()

    def on_build_error(self, *, error: Exception) -> None:
        self._restore_collector()

    def _restore_collector(self) -> None:
        if getattr(self, "_collector_was_enabled", False):
            gc.enable()
        self._collector_was_enabled = False

    def _write_pages(self, config: MkDocsConfig) -> None:
        started = time.perf_counter()
        site_dir = Path(config.site_dir)
        frame = self._frame or fallback_frame(config.site_name, FRAME_PATH, [STYLESHEET], [SCRIPT])
        pages = []
        for page in self._site.pages:
            if not _SAFE_PAGE_PATH.fullmatch(page.path):
                log.error("sigma-catalog: refusing to write a page at unsafe path %r", page.path)
            elif page.path + "index.html" in self._taken:
                log.warning("sigma-catalog: %sindex.html is also a page of docs/; the catalog's page is not written", page.path)
            else:
                pages.append(page)
        if self._command == "serve":
            rendered, written = self._write_cached(pages, frame, site_dir, config)
        else:
            rendered = written = _render_all(pages, self._renderer, frame, site_dir)
        made: set[Path] = set()
        current = {page.path + "index.html" for page in pages}
        for path, target in self._site.redirects.items():
            relative = path + "index.html"
            if relative in self._taken or relative in current or not _SAFE_PAGE_PATH.fullmatch(path):
                continue
            current.add(relative)
            if self._in_site.get(relative) == target:
                continue
            destination = site_dir / relative
            _ensure_dir(destination.parent, made)
            destination.write_bytes(self._renderer.render("redirect.html", path, {"target": target}).encode("utf-8"))
            if self._command == "serve":
                self._in_site[relative] = target
        # what earlier builds of this `mkdocs serve` wrote that is gone now (a rule was deleted)
        for relative in [r for r in self._in_site if r not in current]:
            (site_dir / relative).unlink(missing_ok=True)
            del self._in_site[relative]
        self._finish_frame(site_dir, config)
        if self._deferred is not None:
            self._start_deferred_exports(site_dir)
        log.info(
            "sigma-catalog: %d pages (%d rendered, %d written), %d redirects in %.2f s",
            len(pages), rendered, written, len(self._site.redirects), time.perf_counter() - started,
        )

    def _write_cached(self, pages: list, frame: Frame, site_dir: Path, config: MkDocsConfig) -> tuple[int, int]:
        """`mkdocs serve`: render only pages whose data changed (a fingerprint of it, the frame and
        the templates) into `cache_dir/html`, and copy to the site only what it does not have yet.
        The site is emptied before each rebuild unless --dirty, so unchanged pages come from the
        cache instead of being rendered again."""
        frame_key = hashlib.sha256(("\0".join(frame.head) + "\0" + frame.tail).encode("utf-8")).digest()
        salt = hashlib.sha256(frame_key + self._templates.encode() + str(config.use_directory_urls).encode()).digest()
        cache_root = self._cache / "html"
        manifest = self._load_manifest(cache_root)
        rendered = copied = 0
        current: set[str] = set()
        made: set[Path] = set()
        for page in pages:
            relative = page.path + "index.html"
            current.add(relative)
            fingerprint = hashlib.blake2b(salt + page.fingerprint(), digest_size=16).hexdigest()
            cached = cache_root / relative
            if manifest.get(page.path) != fingerprint or (relative not in self._cache_ok and not cached.exists()):
                _ensure_dir(cached.parent, made)
                cached.write_bytes(_page_html(page, self._renderer, frame))
                manifest[page.path] = fingerprint
                rendered += 1
            self._cache_ok.add(relative)  # in the cache, as the manifest says (checked once per process)
            target = site_dir / relative
            if self._in_site.get(relative) == fingerprint:
                continue
            _ensure_dir(target.parent, made)
            shutil.copyfile(cached, target)
            self._in_site[relative] = fingerprint
            copied += 1
        for path in [p for p in manifest if p + "index.html" not in current]:
            (cache_root / path / "index.html").unlink(missing_ok=True)
            del manifest[path]
        self._save_manifest(cache_root, manifest)
        return rendered, copied

    def _load_manifest(self, cache_root: Path) -> dict[str, str]:
        if self._manifest is None:
            try:
                data = json.loads((cache_root / "manifest.json").read_text(encoding="utf-8"))
                self._manifest = {str(k): str(v) for k, v in data.get("pages", {}).items()} if data.get("version") == CACHE_VERSION else {}
            except (OSError, ValueError, AttributeError):
                self._manifest = {}
        return self._manifest

    def _save_manifest(self, cache_root: Path, manifest: dict[str, str]) -> None:
        _write_if_changed(cache_root / "manifest.json", json.dumps({"version": CACHE_VERSION, "pages": manifest}, sort_keys=True).encode())

    def _finish_frame(self, site_dir: Path, config: MkDocsConfig) -> None:
        """Remove the frame page from the site and the sitemap; list our rule pages in the sitemap."""
        frame_file = site_dir / FRAME_PATH / "index.html"
        if frame_file.is_file():
            frame_file.unlink()
            for folder in (frame_file.parent, frame_file.parent.parent):
                try:
                    folder.rmdir()
                except OSError:
                    break
        sitemap = site_dir / "sitemap.xml"
        frame_url = getattr(self, "_frame_url", None)
        if not sitemap.is_file() or not frame_url:
            return
        text = sitemap.read_text(encoding="utf-8")
        blocks = re.split(r"(?=<url>)", text)
        kept = [block for block in blocks if frame_url not in block]
        base = frame_url[: -len(page_href(FRAME_PATH, config.use_directory_urls))] if frame_url.endswith(page_href(FRAME_PATH, config.use_directory_urls)) else None
        if base is not None:
            extra = "".join(
                f"<url>\n         <loc>{base}{page_href(page.path, config.use_directory_urls)}</loc>\n    </url>\n    "
                for page in self._site.pages
                if page.path.startswith("rules/")
            )
            tail = kept[-1]
            kept[-1] = tail.replace("</urlset>", extra + "</urlset>") if "</urlset>" in tail else tail
        new = "".join(kept)
        if new != text:
            sitemap.write_text(new, encoding="utf-8")
            gz = site_dir / "sitemap.xml.gz"
            if gz.is_file():
                import gzip

                with gzip.GzipFile(str(gz), "wb", mtime=0) as stream:
                    stream.write(new.encode("utf-8"))

    # -- mkdocs serve: exports after the build ---------------------------------------------------------

    def _start_deferred_exports(self, site_dir: Path) -> None:
        catalog, builder, directory_urls = self._deferred
        memo = self._json_memo

        def write() -> None:
            try:
                with pipeline.collector_paused():
                    for export in _data_files(catalog, builder, directory_urls, memo):
                        _write_if_changed(site_dir / export.path, export.data)
            except Exception as error:  # a thread: report, do not lose it
                log.error("sigma-catalog: writing catalog.json, the CSV and the search index failed: %s", error)

        self._deferred = None
        self._export_thread = threading.Thread(target=write, name="sigma-catalog exports", daemon=True)
        self._export_thread.start()

    def wait_for_exports(self) -> None:
        """Under `mkdocs serve`, until catalog.json, the CSV and the search index are written."""
        self._finish_deferred_exports()

    def _finish_deferred_exports(self) -> None:
        thread, self._export_thread = self._export_thread, None
        if thread is not None:
            thread.join()

    def on_shutdown(self) -> None:
        self._finish_deferred_exports()
        # The mkdocs command is ending. A final collection over the catalog's millions of objects
        # would only delay the exit (seconds for SigmaHQ): keep the collector off them.
        gc.freeze()

    # -- mkdocs serve ------------------------------------------------------------------------------

    def on_serve(self, server, *, config: MkDocsConfig, builder):
        for folder in self._folders:
            server.watch(folder.root)
        if self._attack_data is not None:
            server.watch(str(self._attack_data))
        return server


def _data_files(catalog: pipeline.Catalog, builder: SiteBuilder, directory_urls: bool, memo: dict | None) -> list[ExportFile]:
    """catalog.json, the CSV and the search index of one build."""
    files = data_exports(catalog, directory_urls=directory_urls, display_file=builder.display_file,
                         display_problem=builder.display_problem_path, memo=memo, key_of=builder.dependencies)
    files.append(ExportFile(SEARCH_INDEX, search_index(catalog, directory_urls), "search index"))
    return files


def _page_html(page, renderer: Renderer, frame: Frame) -> bytes:
    content = renderer.render(page.template, page.path, page.context)
    return frame.wrap(page.path, page.title, page.description, content).encode("utf-8", errors="xmlcharrefreplace")


#: What the rendering processes of `_render_all` work on (inherited through fork, never pickled).
_JOB: tuple | None = None
_PARALLEL_MINIMUM = 400


def _render_range(bounds: tuple[int, int]) -> int:
    pages, renderer, frame, site_dir = _JOB  # type: ignore[misc]
    made: set[Path] = set()
    with pipeline.collector_paused():
        for page in pages[bounds[0]:bounds[1]]:
            target = site_dir / page.path / "index.html"
            _ensure_dir(target.parent, made)
            target.write_bytes(_page_html(page, renderer, frame))
    return bounds[1] - bounds[0]


def _render_all(pages: list, renderer: Renderer, frame: Frame, site_dir: Path) -> int:
    """`mkdocs build`: render every page into the site; on Linux with several CPUs, in forked
    worker processes (rendering is pure Python, one process uses one CPU)."""
    global _JOB
    workers = min(os.cpu_count() or 1, 8)
    for template in {page.template for page in pages}:
        renderer.env.get_template(template)  # compiled once here, not once per worker
    _JOB = (pages, renderer, frame, site_dir)
    try:
        if workers > 1 and len(pages) >= _PARALLEL_MINIMUM and sys.platform.startswith("linux"):
            import multiprocessing

            size = max(50, len(pages) // (workers * 8))
            ranges = [(start, min(start + size, len(pages))) for start in range(0, len(pages), size)]
            try:
                with multiprocessing.get_context("fork").Pool(workers) as pool:
                    return sum(pool.imap_unordered(_render_range, ranges))
            except OSError as error:  # no fork here: render in this process
                log.debug("sigma-catalog: rendering in one process (%s)", error)
        return _render_range((0, len(pages)))
    finally:
        _JOB = None


def _ensure_dir(path: Path, made: set[Path]) -> None:
    if path not in made:
        path.mkdir(parents=True, exist_ok=True)
        made.add(path)
