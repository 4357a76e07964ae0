"""The whole site model of one build: every page's address, title and template data.

Each page family has its module (`rule_page`, `attack_pages`, `browse_pages`, `changes_page`);
this one runs them in order and sorts the navigation. Addresses come from `addresses`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from catalog.pipeline import Catalog, Entry
from catalog.problems import internal_error
from catalog.site import browse_pages
from catalog.site.addresses import rule_path, rule_redirect_path
from catalog.site.attack_pages import add_attack_pages
from catalog.similarity import Similarity
from catalog.site.history_pages import RuleRecords, add_recent_page
from catalog.site.model import Folder, Page, Site, SiteData, error_page, list_page
from catalog.site.overlap import add_overlap_page
from catalog.site.queries import add_conversion_counts, query_files
from catalog.site.rule_page import RulePages, served_file

if TYPE_CHECKING:
    from catalog.attack import AttackKnowledge

#: The browse pages in navigation order (the Changes page goes right after Search).
NAV_ORDER = ["find/", "rules/", "recent/", "attack/", "coverage/", "logsources/", "levels/", "statuses/", "authors/", "tags/",
             "fields/", "indicators/", "overlap/", "correlations/", "filters/", "problems/", "exports/"]


class SiteBuilder:
    """Turns a `Catalog` into a `Site`; one instance per build."""

    def __init__(self, catalog: Catalog, folders: Sequence[Folder] = (), kb: "AttackKnowledge | None" = None,
                 memo: dict | None = None, preview: bool = False, records: RuleRecords | None = None,
                 conversions: dict | None = None, similarity: Similarity | None = None, previous: SiteData | None = None) -> None:
        """`memo` and `previous` (mkdocs serve): the last build's rule pages and site data, whose
        pages, lists and groupings this build reuses where their inputs did not change."""
        self.data = SiteData(catalog, folders, kb, preview, similarity, previous)
        self.data.records = records if records is not None else RuleRecords()
        self.data.conversions = conversions or {}
        self.rule_pages = RulePages(self.data, memo)

    def build(self, exports: dict) -> Site:
        """The site; `exports` is the Exports page's data (the files the build publishes), which
        the home page shows too."""
        data, site = self.data, Site()
        by_id: dict[str, list[str]] = {}
        for entry in data.entries:
            site.pages.append(self._rule_page(entry))
            path, text = served_file(entry)  # the rule file next to its page (Raw, Download, Copy)
            site.files[path] = text
            site.files.update(query_files(data, entry))  # queries too long for the page, whole
            redirect = rule_redirect_path(entry.document.id)
            if redirect is not None:
                by_id.setdefault(redirect, []).append(entry.slug)
        _add_id_addresses(data, site, by_id)
        add_attack_pages(data, site)
        browse_pages.add_indicator_pages(data, site)
        browse_pages.add_dimension_pages(data, site)
        browse_pages.add_field_pages(data, site)
        browse_pages.add_logsource_pages(data, site)
        browse_pages.add_listing_pages(data, site)
        browse_pages.add_problem_page(data, site)
        add_overlap_page(data, site)
        add_conversion_counts(data, site)
        browse_pages.add_home_figures(data, site)
        browse_pages.add_search_and_exports(site, exports)
        add_recent_page(data, data.records, site)
        site.home.update(exports)
        site.browse.sort(key=lambda page: NAV_ORDER.index(page.path) if page.path in NAV_ORDER else len(NAV_ORDER))
        self.rule_pages.forget_others()
        return site

    def _rule_page(self, entry: Entry) -> Page:
        """A document's page; a failure making it costs that page only: a short error page, and
        the failure listed on the Problems page (built after the rule pages)."""
        try:
            return self.rule_pages.page(entry)
        except Exception as error:  # noqa: BLE001 - a bug or a limit must not take the site down
            source = entry.document.source
            problem = internal_error(source.file_display, error, "building this document's page", source.line)
            self.data.catalog.problems.append(problem)
            self.data.problems_by_file[problem.path].append(problem)
            return error_page(rule_path(entry.slug), entry.document.title, self.data.location(problem), problem.message)


def _add_id_addresses(data: SiteData, site: Site, by_id: dict[str, list[str]]) -> None:
    """`rule/<id>/`: a redirect to the page of the document with that id; when several documents
    share the id (an error), a page listing them all, so the address favours none of them."""
    for path, slugs in by_id.items():
        if len(slugs) == 1:
            site.redirects[path] = rule_path(slugs[0])
            continue
        rule_id = path.split("/")[1]
        site.pages.append(list_page(data, slugs, path, ("All rules", "rules"), f"Documents with the id {rule_id}",
                                    f"{len(slugs)} documents share the id {rule_id}",
                                    intro=f"The id {rule_id} is used by {len(slugs)} documents, which is an error: each must have its own id."))
