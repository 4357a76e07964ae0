"""The whole site model of one build: every page's address, title and template data.

Each page family has its module (`rule_page`, `attack_pages`, `browse_pages`, `changes_page`);
this one runs them in order and sorts the navigation. Addresses come from `addresses`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from catalog.pipeline import Catalog
from catalog.site import browse_pages
from catalog.site.addresses import rule_path, rule_redirect_path
from catalog.site.attack_pages import add_attack_pages
from catalog.site.model import Folder, Site, SiteData
from catalog.site.overlap import add_overlap_page
from catalog.site.queries import add_conversion_counts
from catalog.site.rule_page import RulePages

if TYPE_CHECKING:
    from catalog.attack import AttackKnowledge

#: The browse pages in navigation order (the Changes page goes right after Search).
NAV_ORDER = ["find/", "rules/", "attack/", "coverage/", "logsources/", "levels/", "statuses/", "authors/", "tags/",
             "fields/", "indicators/", "overlap/", "correlations/", "filters/", "errors/", "exports/"]


class SiteBuilder:
    """Turns a `Catalog` into a `Site`; one instance per build."""

    def __init__(self, catalog: Catalog, folders: Sequence[Folder] = (), kb: "AttackKnowledge | None" = None,
                 memo: dict | None = None, conversions: dict | None = None) -> None:
        self.data = SiteData(catalog, folders, kb)
        self.data.conversions = conversions or {}
        self.rule_pages = RulePages(self.data, memo)

    def build(self, exports: dict) -> Site:
        """The site; `exports` is the Exports page's data (the files the build publishes), which
        the home page shows too."""
        data, site = self.data, Site()
        for entry in data.entries:
            site.pages.append(self.rule_pages.page(entry))
            redirect = rule_redirect_path(entry.document.id)
            if redirect is not None:
                site.redirects.setdefault(redirect, rule_path(entry.slug))
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
        site.home.update(exports)
        site.browse.sort(key=lambda page: NAV_ORDER.index(page.path) if page.path in NAV_ORDER else len(NAV_ORDER))
        self.rule_pages.forget_others()
        return site
