"""What the catalog adds to MkDocs' files in `on_files`: the catalog and its site model, the
change preview, the exports, our assets, the browse page stubs and the frame page.

The browse pages are Markdown stubs in the build cache (rewritten only when their content
changes, so `--dirty` rebuilds skip the others); their HTML comes from our templates in
`on_page_content`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files, InclusionLevel

from catalog import pipeline
from catalog.problems import printable, severity_counts
from catalog.history import HistoryUnavailable, load_history
from catalog.findings import add_catalog_findings
from catalog.similarity import Similarity
from catalog.site.addresses import ASSETS, CATALOG_JSON, FRAME_SRC_URI, LIST_ROWS, SCRIPT, SCRIPT_ROOT_MARKER, SCRIPT_TO_ROOT, SEARCH_INDEX, \
    TECHNIQUES_CSV
from catalog.site.config import CatalogConfig
from catalog.site.exports import ExportFile, data_files, navigator_layers
from catalog.site.model import Folder, Page, Site, SiteData
from catalog.site.output import DeferredExports, LoadCache, write_if_changed
from catalog.site.history_pages import RuleRecords
from catalog.site.pages import SiteBuilder
from catalog.site.queries import convert_catalog, read_documents, start_conversions
from catalog.site.render import DESCRIPTION_MARKER, TITLE_MARKER, TOC_MARKER, Renderer

log = logging.getLogger("mkdocs.plugins.sigma_catalog")

ASSET_DIR = Path(__file__).parent / "assets"


class BuildFiles:
    """Adds the catalog to the files of each build; keeps what `mkdocs serve` rebuilds can reuse."""

    def __init__(self, loads: LoadCache, deferred: DeferredExports) -> None:
        self._loads = loads
        self._deferred = deferred
        self._memo_signature: tuple | None = None
        self._page_memo: dict = {}  # mkdocs serve: rule pages of the last build (rule_page.RulePages)
        self._json_memo: dict = {}  # mkdocs serve: catalog.json records of the last build
        self._browse_memo: dict[str, tuple[bytes, str]] = {}  # src_uri -> (fingerprint, HTML) of the last build
        self._similarity: Similarity | None = None  # mkdocs serve: the last build's, for the next one to reuse
        self._data: SiteData | None = None  # mkdocs serve: the site data of the last build
        self._told: set[str] = set()  # the history notices given in this process
        self.browse_html: dict[str, str] = {}  # src_uri -> the HTML of a browse page
        self.titles: dict[str, str] = {}  # src_uri -> navigation title of the browse pages (not the home page)
        self.home_html: str | None = None  # the figures for the user's own home page
        self.taken: set[str] = set()  # what MkDocs itself writes to the site (docs pages, exports, assets)

    def add(self, files: Files, config: MkDocsConfig, options: CatalogConfig, folders: list[Folder], attack_data: Path | None,
            cache: Path, renderer: Renderer, serving: bool) -> Site:
        """Build the catalog and its site model; add our files to `files`; the site's own pages are
        written in on_post_build."""
        started = time.perf_counter()
        kb = _knowledge(attack_data)
        # rules are converted to queries by worker processes while this one reads them, and git
        # reads the history in processes of its own
        run = start_conversions(options.conversions, cache)
        with run or contextlib.nullcontext():
            load = self._loads.load if run is None else functools.partial(self._loads.load, each=read_documents(run))
            with ThreadPoolExecutor(1, thread_name_prefix="sigma-catalog history") as background:
                reading = background.submit(_records, options, folders, cache, self._told)
                catalog = pipeline.build_catalog([folder.root for folder in folders], attack=kb, load=load,
                                                 dialects=options.dialects,
                                                 labels={folder.root: folder.display for folder in folders})
                records = reading.result()
            similarity = add_catalog_findings(catalog, records.history, cache, previous=self._similarity if serving else None)
            self._similarity = similarity if serving else None
            converted = convert_catalog(catalog, run)  # adds its findings to the catalog's
        loaded = time.perf_counter()
        signature = (tuple(folders), config.site_name, kb.source_hash, config.use_directory_urls, config.site_url,
                     tuple(options.dialects))
        # (the change preview adds banners to rule pages: no page may be shared between its builds)
        builder = self._builder(signature, serving and not options.base, catalog, folders, kb, preview=bool(options.base),
                                records=records, conversions=converted, similarity=similarity)
        records.prepare(builder.data, str(cache))
        if options.strict and catalog.errors:
            listing = "\n".join(f"  {printable(builder.data.location(p))}: {printable(p.message)} [{p.code}]" for p in catalog.errors)
            raise PluginError(f"sigma-catalog: {len(catalog.errors)} rule errors (strict: true):\n{listing}")

        mark = time.perf_counter()
        exports, exports_page = self._exports(files, config, catalog, kb, builder, serving, cache)
        timings = {"catalog": loaded - started, "exports": time.perf_counter() - mark}
        mark = time.perf_counter()
        site = builder.build(exports_page)
        if options.base:
            _add_changes(site, options.base, folders, kb, catalog, builder)
        timings["site model"] = time.perf_counter() - mark
        mark = time.perf_counter()
        for export in exports:
            _add_file(files, config, export.path, cache / "files", export.data, export.source)
        for asset in sorted(ASSET_DIR.iterdir()):
            if asset.is_file() and ASSETS + asset.name == SCRIPT:
                script = asset.read_bytes().replace(SCRIPT_ROOT_MARKER.encode(), SCRIPT_TO_ROOT.encode())
                _add_file(files, config, SCRIPT, cache / "files", script)
            elif asset.is_file():
                _add_file(files, config, ASSETS + asset.name, None, source=asset)
        timings["writing exports"] = time.perf_counter() - mark
        mark = time.perf_counter()
        self._add_browse_pages(files, config, site, renderer, cache)
        timings["browse pages"] = time.perf_counter() - mark
        # the frame page: rendered by the theme, captured in on_post_page, removed in on_post_build
        # (its one heading gives the theme's table of contents, which rule pages fill: render.TOC_MARKER)
        frame_meta = {"title": TITLE_MARKER, "description": DESCRIPTION_MARKER, "search": {"exclude": True}}
        _add_page(files, config, cache, FRAME_SRC_URI, f"---\n{json.dumps(frame_meta)}\n---\n\n## {TOC_MARKER}\n\nframe\n")
        self.taken = {file.dest_uri for file in files}
        self._log(catalog, builder, timings)
        return site

    def _builder(self, signature: tuple, reuse: bool, *args, **kwargs) -> SiteBuilder:
        """The site builder, given what of the last build it may `reuse` (mkdocs serve): nothing
        when the configuration's `signature` changed."""
        if signature != self._memo_signature:
            self._memo_signature, self._page_memo, self._json_memo, self._browse_memo = signature, {}, {}, {}
            self._data = None
        builder = SiteBuilder(*args, memo=self._page_memo if reuse else None, previous=self._data if reuse else None, **kwargs)
        self._data = builder.data if reuse else None
        return builder

    def _exports(self, files: Files, config: MkDocsConfig, catalog: pipeline.Catalog, kb, builder: SiteBuilder,
                 serving: bool, cache: Path) -> tuple[list[ExportFile], dict]:
        """(the export files to add now, the Exports page's data)."""
        layers = navigator_layers(catalog, kb, config.site_name, config.site_url, config.use_directory_urls, reuse=builder.data.reuse)
        # the rows of the rule lists: needed by the pages at once, so never deferred
        list_rows = ExportFile(LIST_ROWS, builder.data.lists.json(config.use_directory_urls), "rule lists")
        for path in (CATALOG_JSON, TECHNIQUES_CSV, SEARCH_INDEX, LIST_ROWS):
            _check_free(files, path)

        def make_data_files(memo: dict | None = None) -> list[ExportFile]:
            return data_files(catalog, cache / "files", directory_urls=config.use_directory_urls, display_file=builder.data.display_file,
                              display_problem=builder.data.display_problem_path, memo=memo, key_of=builder.rule_pages.dependencies)

        # catalog.json, the CSV and the search index: written by the plugin while the pages are
        # rendered (mkdocs build), or after the build in the background (mkdocs serve)
        memo = self._json_memo if serving else None
        self._deferred.pending = lambda: make_data_files(memo)
        exports = list(layers) + [list_rows]
        exports_page = {
            "catalog_json": CATALOG_JSON,
            "techniques_csv": TECHNIQUES_CSV,
            "layers": [{"file": layer.path, "name": layer.label, "techniques": layer.techniques} for layer in layers],
            "schema_path": schema.url if (schema := files.get_file_from_path("json-schema.md")) else None,
        }
        return exports, exports_page

    def _add_browse_pages(self, files: Files, config: MkDocsConfig, site: Site, renderer: Renderer, cache: Path) -> None:
        """The browse pages: MkDocs builds them (they are in the navigation) from stubs in the cache."""
        self.browse_html, self.titles = {}, {}
        browse = list(site.browse)
        if files.get_file_from_path("index.md") is None:
            browse.insert(0, Page("", config.site_name, "home.html", dict(site.home, heading=config.site_name), src_uri="index.md"))
            self.home_html = None
        else:
            self.home_html = renderer.render("home.html", "", site.home)
        memo, self._browse_memo = self._browse_memo, {}
        for page in browse:
            assert page.src_uri is not None
            remembered = memo.get(page.src_uri)
            if remembered is not None and remembered[0] == page.fingerprint():
                html = remembered[1]
            else:
                html = renderer.render(page.template, page.path, page.context)
            self._browse_memo[page.src_uri] = (page.fingerprint(), html)
            meta = {"title": page.nav_title or page.title, "search": {"exclude": True}}
            if page.src_uri != "index.md":
                meta["hide"] = ["navigation", "toc"] if page.wide else ["toc"]
                self.titles[page.src_uri] = meta["title"]
            digest = hashlib.sha256(html.encode("utf-8")).hexdigest()[:20]
            _add_page(files, config, cache, page.src_uri, f"---\n{json.dumps(meta)}\n---\n\n<!-- sigma-catalog: generated page {digest} -->\n")
            self.browse_html[page.src_uri] = html

    def _log(self, catalog: pipeline.Catalog, builder: SiteBuilder, timings: dict[str, float]) -> None:
        counts = severity_counts(catalog.problems)
        order = ("catalog", "site model", "exports", "writing exports", "browse pages")
        log.info(
            "sigma-catalog: %d documents from %d files (%d read), %d errors, %d warnings, %d notices (listed on problems/); %s",
            len(catalog.entries), len(catalog.files), self._loads.read, counts["errors"], counts["warnings"], counts["notices"],
            ", ".join(f"{name} {timings[name]:.2f} s" for name in order),
        )
        for problem in catalog.problems:
            log.debug("%s: %s: %s [%s]", printable(builder.data.location(problem)), problem.severity.value, printable(problem.message), problem.code)


def _records(options: CatalogConfig, folders: list[Folder], cache: Path, told: set[str]) -> RuleRecords:
    """The rule folders' git history (cached by HEAD); without one, a single notice and no History
    sections. `told`: the notices given already (mkdocs serve gives each once, not on every rebuild)."""
    records = RuleRecords(recent_commits=options.recent_commits, recent_days=options.recent_days)
    notice = None
    if options.history and folders:
        started = time.perf_counter()
        found = load_history([folder.root for folder in folders], cache)
        records.seconds = time.perf_counter() - started
        if isinstance(found, HistoryUnavailable):
            notice = f"sigma-catalog: no rule history: {found.reason}"
        else:
            records.history, records.truncated = found, found.shallow
            if found.shallow:
                notice = "sigma-catalog: the repository is a shallow clone: rule history truncated"
    if notice is not None:
        log.log(logging.DEBUG if notice in told else logging.INFO, "%s", notice)
        told.add(notice)
    return records


def _knowledge(attack_data: Path | None):
    from catalog.attack import AttackDataError, load_knowledge

    try:
        return load_knowledge(attack_data)
    except AttackDataError as error:
        raise PluginError(f"sigma-catalog: {error}") from error


def _add_changes(site: Site, base: str, folders: list[Folder], kb, catalog: pipeline.Catalog, builder: SiteBuilder) -> None:
    """The change preview (`base`, set by `catalog build --base REF`): the Changes page and banners."""
    from catalog.changes import ChangeError
    from catalog.diff import compute_changes
    from catalog.site.changes_page import add_changes

    try:
        changes = compute_changes([f.root for f in folders], base, kb, head=catalog, labels={f.root: f.display for f in folders})
    except ChangeError as error:
        raise PluginError(f"sigma-catalog: base '{base}': {error}") from error
    add_changes(site, changes, builder.data.display_problem_path)
    log.info("sigma-catalog: changes against %s: %s", base, ", ".join(f"{count} {kind}" for kind, count in changes.counts().items()))


def _check_free(files: Files, src_uri: str) -> None:
    existing = files.get_file_from_path(src_uri)
    if existing is not None and existing.generated_by is None:
        raise PluginError(f"sigma-catalog: docs/{src_uri} is in the way of a file the catalog generates; rename it")


def _add_file(files: Files, config: MkDocsConfig, src_uri: str, cache: Path | None, data: bytes | None = None,
              source: Path | None = None) -> None:
    _check_free(files, src_uri)
    if source is None:
        assert cache is not None and data is not None
        source = cache / src_uri
        write_if_changed(source, data)
    files.append(File.generated(config, src_uri, abs_src_path=str(source)))


def _add_page(files: Files, config: MkDocsConfig, cache: Path, src_uri: str, text: str) -> None:
    if files.get_file_from_path(src_uri) is not None:
        raise PluginError(f"sigma-catalog: docs/{src_uri} is in the way of a page the catalog generates; rename it")
    source = cache / "pages" / src_uri
    write_if_changed(source, text.encode("utf-8"))
    files.append(File.generated(config, src_uri, abs_src_path=str(source), inclusion=InclusionLevel.NOT_IN_NAV))
