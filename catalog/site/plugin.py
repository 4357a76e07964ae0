"""The `sigma-catalog` MkDocs plugin: a Sigma rule repository as pages of the MkDocs site.

How a build goes (public plugin API of MkDocs 1.6 only; ProperDocs runs it unchanged):

- `on_config`: resolve the rule folders, ATT&CK data and cache folder (relative to mkdocs.yml);
  add our stylesheet and script to the theme's `extra_css` / `extra_javascript`.
- `on_pre_build`: pause the garbage collector until the build ends (`on_post_build`).
- `on_files`: run the catalog pipeline, build the site model (`pages.SiteBuilder`), write the
  exports and the search index, and add to the build: the browse pages (Markdown stubs in the
  build cache, rewritten only when their content changes, so `--dirty` rebuilds skip the others),
  the export files, our assets, and one hidden "frame" page.
- `on_nav`: put the browse pages in the navigation, after the home page. Rule pages stay out of it.
- `on_page_content`: the browse pages get their HTML from our templates (no Markdown); the frame
  page gets a marker; the home page gets the catalog figures.
- `on_post_page`: capture the theme's rendering of the frame page: the header, navigation and
  footer (stylesheets, palette, scripts) that every page we write ourselves shares.
- `on_post_build`: write the thousands of rule, technique, indicator... pages (`output`): our
  template renders the content, the captured frame wraps it.
- `on_serve`: watch the rule folders. A rule edit goes through `live.RuleWatcher` to
  `update_rules`, which redoes the plugin's part of the build on the last full build's snapshot
  (`live.Snapshot`) and no MkDocs rebuild; edits to docs/ or mkdocs.yml rebuild as MkDocs does.

Under `mkdocs serve` the plugin object lives across rebuilds (it defines `on_startup`), and so do
its caches: rule files that did not change are not parsed again (the pipeline takes our loader,
and remembers their analyses), rule pages and catalog.json records whose inputs did not change are reused.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from pathlib import Path
from typing import Literal

import jinja2
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, event_priority
from mkdocs.structure.files import Files
from mkdocs.structure.nav import Navigation
from mkdocs.structure.pages import Page as MkDocsPage

from catalog import pipeline
from catalog.site.addresses import FRAME_PATH, FRAME_SRC_URI, SCRIPT, STYLESHEET, is_safe_page_path
from catalog.site.files import BuildFiles
from catalog.site.live import BrowseFrame, BrowseState, ForkedExports, RuleWatcher, Snapshot, copy_generated_files, write_browse_pages
from catalog.site.config import CatalogConfig
from catalog.site.model import Folder, Site
from catalog.site.output import LoadCache, PageWriter, finish_sitemap, read_sitemap
from catalog.site.render import CONTENT_MARKER, Frame, Renderer, fallback_frame

log = logging.getLogger("mkdocs.plugins.sigma_catalog")

#: Where a user's home page (docs/index.md) receives the catalog figures; appended when absent.
HOME_MARKER = "<!-- sigma-catalog:home -->"


class CatalogPlugin(BasePlugin[CatalogConfig]):
    """Builds the Sigma catalog's pages inside the MkDocs build."""

    def __init__(self) -> None:
        self._command: str | None = None  # the mkdocs command, once on_startup tells it (not in a build run from Python)
        self._dirty = False
        self._loads = LoadCache()
        self._writer = PageWriter()
        self._deferred = ForkedExports()
        self._collector = contextlib.ExitStack()  # the garbage collector's pause during a build
        self._renderer: Renderer | None = None  # kept across serve rebuilds: templates compile once
        self._folders: list[Folder] = []
        self._attack_data: Path | None = None
        self._cache = Path()
        self._files = BuildFiles(self._loads, self._deferred)
        self._site = Site()
        self._frame: Frame | None = None
        self._frame_url: str | None = None
        self._snapshot: Snapshot | None = None  # what the last full build leaves for rule edits
        self._config: MkDocsConfig | None = None  # the last full build's configuration
        self._watcher: RuleWatcher | None = None

    def on_startup(self, *, command: Literal["build", "gh-deploy", "serve"], dirty: bool) -> None:
        # Defining on_startup keeps this object across the rebuilds of `mkdocs serve`: the caches stay.
        self._command = command
        self._dirty = dirty

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig:
        if not self.config.enabled:
            return config
        home = Path(config.config_file_path).parent if config.config_file_path else Path.cwd()
        self._folders = [self._folder(home, folder) for folder in self.config.rules]
        self._attack_data = None
        if self.config.attack_data:
            self._attack_data = (home / self.config.attack_data).resolve()
            if not self._attack_data.exists():
                raise PluginError(f"sigma-catalog: attack_data '{self.config.attack_data}' does not exist ({self._attack_data})")
        self._cache = (home / self.config.cache_dir).resolve()
        for name, folder in (("docs_dir", config.docs_dir), ("site_dir", config.site_dir)):
            outside = Path(folder).resolve()
            if self._cache == outside or outside in self._cache.parents:
                raise PluginError(f"sigma-catalog: cache_dir '{self.config.cache_dir}' must be outside {name}")
        for asset, extra in ((STYLESHEET, config.extra_css), (SCRIPT, config.extra_javascript)):
            if asset not in [str(item) for item in extra]:
                extra.append(asset)
        if self._renderer is None or self._renderer.directory_urls != config.use_directory_urls:
            self._renderer = Renderer(config.use_directory_urls)
        self._frame = None
        return config

    @staticmethod
    def _folder(home: Path, folder) -> Folder:
        path = (home / folder.path).resolve()
        if not path.exists():
            raise PluginError(f"sigma-catalog: the rule folder '{folder.path}' does not exist ({path})")
        # files are shown by the folder as configured; an absolute path would put the build
        # machine's layout in the site, so such a folder is shown by its own name only
        shown = folder.path.rstrip("/") or "."
        return Folder(str(path), path.name if Path(shown).is_absolute() else shown, folder.name, folder.source_url)

    def on_pre_build(self, *, config: MkDocsConfig) -> None:
        if not self.config.enabled:
            return
        # Python's cyclic collector rescans the catalog's millions of objects again and again while
        # MkDocs and Jinja allocate: paused from here to the end of the build (on_files included).
        self._collector.enter_context(pipeline.collector_paused())
        self._deferred.wait()
        if not self._dirty:
            self._writer.in_site.clear()  # MkDocs empties the site folder before a build that is not --dirty

    @event_priority(50)  # before other plugins look at the files, so they see ours
    def on_files(self, files: Files, *, config: MkDocsConfig) -> Files:
        if not self.config.enabled:
            return files
        assert self._renderer is not None
        # frames of browse pages that this build does not render (--dirty) stay those on disk
        self._snapshot = Snapshot(given=list(files), frames=self._snapshot.frames if self._snapshot else {})
        self._site = self._files.add(files, config, self.config, self._folders, self._attack_data, self._cache,
                                     self._renderer, serving=self._command == "serve")
        given = {id(file) for file in self._snapshot.given}
        self._snapshot.ours = [file for file in files if id(file) not in given]
        return files

    def on_nav(self, nav: Navigation, *, config: MkDocsConfig, files: Files) -> Navigation:
        """The browse pages go into the navigation right after the home page (unless nav lists them)."""
        if not self.config.enabled:
            return nav
        listed = {id(page) for page in nav.pages}
        ours = []
        for src_uri, title in self._files.titles.items():
            file = files.get_file_from_path(src_uri)
            if file is not None and file.page is not None:
                # set here, not only read from the stub: `--dirty` rebuilds do not read unchanged stubs
                file.page.title = title
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
        if self.config.enabled and env.bytecode_cache is None:
            folder = self._cache / "jinja"
            folder.mkdir(parents=True, exist_ok=True)
            env.bytecode_cache = jinja2.FileSystemBytecodeCache(str(folder))
        return env

    def on_page_content(self, html: str, *, page: MkDocsPage, config: MkDocsConfig, files: Files) -> str:
        if not self.config.enabled:
            return html
        src_uri = page.file.src_uri
        if src_uri == FRAME_SRC_URI:
            return CONTENT_MARKER
        if src_uri in self._files.browse_html:
            return self._files.browse_html[src_uri]
        if src_uri == "index.md" and self._files.home_html is not None:
            if HOME_MARKER in html:
                return html.replace(HOME_MARKER, self._files.home_html, 1)
            return html + self._files.home_html
        return html

    @event_priority(-100)  # after other plugins: the frames are of what MkDocs writes
    def on_post_page(self, output: str, *, page: MkDocsPage, config: MkDocsConfig) -> str:
        content = self._files.browse_html.get(page.file.src_uri)
        if self.config.enabled and content is not None and self._snapshot is not None:
            frame = BrowseFrame.capture(page.file.dest_uri, output, content)
            if frame is not None:
                self._snapshot.frames[page.file.src_uri] = frame
        if self.config.enabled and page.file.src_uri == FRAME_SRC_URI:
            try:
                self._frame = Frame.capture(output, FRAME_PATH)
            except ValueError as error:
                log.warning("sigma-catalog: cannot use the theme's page frame (%s); rule pages get a plain one", error)
            self._frame_url = page.canonical_url
        return output

    def on_post_build(self, *, config: MkDocsConfig) -> None:
        if not self.config.enabled:
            return
        try:
            self._config = config
            self._write_pages(config)
        finally:
            if self._command in ("build", "gh-deploy"):
                # The command ends with this build. The collector, back on, would first scan all the
                # build made (0.6-0.8 s of CPU for SigmaHQ) only to find little to free.
                gc.freeze()
            self._collector.close()
        if self._command == "serve" and self._snapshot is not None and gc.get_freeze_count() == 0:
            # the first build's catalog (rule files, analyses, pages) lives as long as the server: kept
            # out of the collector's reach, a rule edit's update is not followed by a scan of all of it
            gc.freeze()

    def on_build_error(self, *, error: Exception) -> None:
        self._collector.close()

    def _write_pages(self, config: MkDocsConfig, update: bool = False) -> None:
        started = time.perf_counter()
        site_dir = Path(config.site_dir)
        frame = self._frame or fallback_frame(config.site_name, FRAME_PATH, [STYLESHEET], [SCRIPT])
        pages = []
        for page in self._site.pages:
            if not is_safe_page_path(page.path):
                log.error("sigma-catalog: refusing to write a page at unsafe path %r", page.path)
            elif page.path + "index.html" in self._files.taken:
                log.warning("sigma-catalog: %sindex.html is also a page of docs/; the catalog's page is not written", page.path)
            else:
                pages.append(page)
        assert self._renderer is not None
        serving = self._command == "serve"
        rendered, written = self._writer.write(pages, self._site.redirects, self._site.files, self._files.taken, self._renderer, frame, site_dir,
                                               self._cache if serving else None,
                                               meanwhile=(lambda: None) if serving else lambda: self._deferred.write_now(site_dir))
        assert self._snapshot is not None  # on_files made it; an update starts from it
        if not update:
            self._snapshot.sitemap = read_sitemap(site_dir)  # MkDocs' own, as this build wrote it
        finish_sitemap(site_dir, self._frame_url, self._site.pages, config.use_directory_urls, self._snapshot.sitemap)
        self._deferred.start(site_dir)  # mkdocs serve: catalog.json, the CSV and the search index in the background
        log.info(
            "sigma-catalog: %d pages (%d rendered, %d written), %d redirects in %.2f s",
            len(pages), rendered, written, len(self._site.redirects), time.perf_counter() - started,
        )

    def wait_for_exports(self) -> None:
        """Under `mkdocs serve`, until catalog.json, the CSV and the search index are written."""
        self._deferred.wait()

    def on_shutdown(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        self._deferred.wait()
        # The mkdocs command is ending. A final collection over the catalog's millions of objects
        # would only delay the exit (seconds for SigmaHQ): keep the collector off them.
        gc.freeze()

    def on_serve(self, server, *, config: MkDocsConfig, builder):
        if not self.config.enabled:
            return server
        if RuleWatcher.possible(server):
            self._watcher = RuleWatcher(server, [folder.root for folder in self._folders], self.update_rules)
            self._watcher.start()
        else:
            for folder in self._folders:
                server.watch(folder.root)
        if self._attack_data is not None:
            server.watch(str(self._attack_data))
        return server

    def update_rules(self) -> bool:
        """After rule edits, under `mkdocs serve`: bring the site up to date without MkDocs' rebuild
        (the same steps as a build, on the last build's snapshot). False when MkDocs must rebuild."""
        snapshot, config = self._snapshot, self._config
        if not self.config.enabled or snapshot is None or config is None or self.config.base or self._renderer is None:
            return False
        started = time.perf_counter()
        before = BrowseState(dict(self._files.titles), dict(self._files.browse_html), self._files.home_html)
        taken = self._files.taken
        files = Files(list(snapshot.given))
        with pipeline.collector_paused():
            self._deferred.wait_for_thread()
            try:
                site = self._files.add(files, config, self.config, self._folders, self._attack_data, self._cache,
                                       self._renderer, serving=True)
            except PluginError as error:  # strict mode and an error: the rebuild reports it
                log.info("sigma-catalog: %s", error)
                return False
            given = {id(file) for file in snapshot.given}
            ours = [file for file in files if id(file) not in given]
            after = BrowseState(self._files.titles, self._files.browse_html, self._files.home_html)
            self._files.taken = taken  # the same files as before (checked below): MkDocs wrote the same
            site_dir = Path(config.site_dir)
            if [file.src_uri for file in ours] != snapshot.shape() or not write_browse_pages(before, after, snapshot, site_dir):
                return False
            copy_generated_files(ours, site_dir)
            self._site = site
            self._write_pages(config, update=True)
        log.info("sigma-catalog: rule edits applied in %.2f s", time.perf_counter() - started)
        return True
