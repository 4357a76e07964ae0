"""The browse pages: shared indicators, levels, statuses, authors, tags, fields, log sources, the
listings of every rule, correlation and filter, the Problems page, Search and Exports.

Each family adds its pages (one per value) to `site.pages`, its index page to `site.browse`, and
its figures to `site.home`.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from typing import Sequence

from catalog.analysis import Indicator, IndicatorKey, field_label, is_field_reference
from catalog.bounds import PROBLEM_ROWS, normal
from catalog.model import FilterRule, Rule
from catalog.pipeline import Entry
from catalog.problems import Code, Severity, severity_counts
from catalog.site.addresses import CATALOG_JSON, OLD_PROBLEMS, PROBLEMS, RULES, indicator_path, item_path, key_slug, rule_path
from catalog.site.model import Grouping, Listing, Page, Site, SiteData, author_key, browse_page, list_page, shorten, split_authors

#: The browse dimensions of document metadata: (section, title, singular, the values of a document,
#: what groups spellings of one value: authors by name without organisation, case or extra spaces).
DIMENSIONS = (
    ("levels", "Levels", "Level", lambda d: [d.level] if d.level else [], str),
    ("statuses", "Statuses", "Status", lambda d: [d.status] if d.status else [], str),
    ("authors", "Authors", "Author", lambda d: split_authors(d.author), author_key),
    ("tags", "Tags", "Tag", lambda d: list(d.tags), str),
)
#: Dimensions listed in their own order rather than by count.
RANK = {
    "levels": ["critical", "high", "medium", "low", "informational"],
    "statuses": ["stable", "test", "experimental", "deprecated", "unsupported"],
}


def add_indicator_pages(data: SiteData, site: Site) -> None:
    listings, top = data.reuse("indicators", None, _indicator_parts, functools.partial(_indicator_listings, data))
    site.pages.extend(data.listed_pages("indicators", listings, _indicator_page))
    corpus = data.catalog.corpus
    site.browse.append(browse_page("indicators/", "Shared indicators", "indicators.html",
                                   {"top": top, "total": len(listings), "distinct": len(corpus)}))
    site.home["shared_indicators"] = len(listings)
    site.home["indicators"] = len(corpus)


def _indicators(entry: Entry) -> Sequence[Indicator]:
    return entry.analysis.indicators if entry.analysis is not None and isinstance(entry.document, Rule) else ()


def _indicator_parts(entry: Entry) -> list[tuple]:
    """What the indicator pages read of a rule: its indicators as it writes them."""
    return [(indicator.key, indicator.field, indicator.value) for indicator in _indicators(entry)]


def _indicator_listings(data: SiteData) -> tuple[list[Listing], list[dict]]:
    """A page per indicator that rules share (written as the first rule writes it), and the
    index's top 500."""
    spelling: dict[IndicatorKey, tuple[str, str]] = {}
    for entry in data.entries:
        for indicator in _indicators(entry):
            spelling.setdefault(indicator.key, (indicator.field_label, indicator.value))
    listings, top = [], []
    for key, slugs in data.catalog.corpus.shared():
        label, value = spelling.get(key, (field_label(key[0] or None), key[2]))
        listings.append((slugs, (key, label, value)))
        if len(top) < 500:
            top.append({"field": label, "kind": key[1], "value": value, "field_reference": is_field_reference(key),
                        "count": len(slugs), "path": indicator_path(key)})
    return listings, top


def _indicator_page(data: SiteData, slugs: list[str], key: IndicatorKey, label: str, value: str) -> Page:
    return Page(indicator_path(key), shorten(f"{label} {key[1]} {value}", 120), "indicator.html", {
        "field": label, "kind": key[1], "value": value, "field_reference": is_field_reference(key), "count": len(slugs),
        "rules": data.rule_rows(slugs),
    }, f"{len(slugs)} Sigma rules look for {label} {key[1]} {shorten(value, 80)}")


def add_dimension_pages(data: SiteData, site: Site) -> None:
    """Levels, statuses, authors and tags: a page per value, an index of counts per dimension."""
    for dimension in DIMENSIONS:
        section, title, singular, values, _ = dimension
        unpaged = data.catalog.page_caps.tags if section == "tags" else set()
        listings, items = data.reuse(section, unpaged, lambda entry, values=values: values(entry.document),
                                     functools.partial(_dimension_listings, data, dimension, unpaged))
        site.pages.extend(data.listed_pages(section, listings, list_page))
        site.browse.append(browse_page(f"{section}/", title, "counts.html", {"heading": title, "items": items, "singular": singular}))
        site.home[section] = len(items)


def _dimension_listings(data: SiteData, dimension: tuple, unpaged: set[str]) -> tuple[list[Listing], list[dict]]:
    """A dimension's list pages (one per value, `unpaged` values aside) and the rows of its index."""
    section, title, singular, values, grouped_by = dimension
    groups = Grouping()
    for entry in data.entries:
        for value in dict.fromkeys(values(entry.document)):
            if normal(value) not in unpaged:
                groups.add(key_slug(grouped_by(value)), value, entry.slug)
    listings, items = [], []
    for group in groups.values():
        name = group.name
        path = item_path(section, grouped_by(name))
        items.append({"name": name, "count": len(group.slugs), "path": path})
        listings.append((group.slugs, (path, (title, section), f"{singular}: {name}", f"Sigma rules with {singular.lower()} {name}",
                                       _spellings(group))))
    rank = RANK.get(section)
    if rank:
        items.sort(key=lambda item: (rank.index(item["name"].lower()) if item["name"].lower() in rank else len(rank), item["name"]))
    elif section == "tags":
        items.sort(key=lambda item: item["name"].casefold())
    else:
        items.sort(key=lambda item: (-item["count"], item["name"].casefold()))
    return listings, items


def _spellings(group) -> str | None:
    """The intro of a page whose value is written in several ways."""
    if len(group.names) < 2:
        return None
    others = sorted((spelling for spelling in group.names if spelling != group.name), key=str.casefold)
    return f"Also written as: {', '.join(others)}."


def _fields(entry: Entry) -> list[str]:
    document = entry.document
    if not isinstance(document, (Rule, FilterRule)):
        return []
    return [item.field for identifier in document.detection.identifiers.values() for item in identifier.items if item.field is not None]


def add_field_pages(data: SiteData, site: Site) -> None:
    unpaged = data.catalog.page_caps.fields
    listings, items = data.reuse("fields", unpaged, _fields, functools.partial(_field_listings, data, unpaged))
    site.pages.extend(data.listed_pages("fields", listings, list_page))
    site.browse.append(browse_page("fields/", "Fields", "counts.html", {"heading": "Fields", "items": items, "singular": "Field"}))
    site.home["fields"] = len(items)


def _field_listings(data: SiteData, unpaged: set[str]) -> tuple[list[Listing], list[dict]]:
    """A page per field the rules read (`unpaged` fields aside), and the rows of the index."""
    groups = Grouping()
    for entry in data.entries:
        for name in _fields(entry):
            if normal(name) not in unpaged:
                groups.add(key_slug(name), name, entry.slug)
    listings, items = [], []
    for group in groups.values():
        name = group.name
        path = item_path("fields", name)
        items.append({"name": name, "count": len(group.slugs), "path": path})
        listings.append((group.slugs, (path, ("Fields", "fields"), f"Field: {name}", f"Sigma rules that read the field {name}",
                                       _spellings(group))))
    items.sort(key=lambda item: (-item["count"], item["name"].casefold()))
    return listings, items


def _logsources(entry: Entry) -> list:
    """A rule on `category: [a, b]` is listed under a and b."""
    document = entry.document
    return list(document.logsource.each) if isinstance(document, (Rule, FilterRule)) else []


def add_logsource_pages(data: SiteData, site: Site) -> None:
    listings, products = data.reuse("logsources", None, _logsources, functools.partial(_logsource_listings, data))
    site.pages.extend(data.listed_pages("logsources", listings, list_page))
    site.browse.append(browse_page("logsources/", "Log sources", "logsources.html", {"products": products}))
    site.home["logsources"] = len(listings)


def _logsource_listings(data: SiteData) -> tuple[list[Listing], list[dict]]:
    """A page per log source, and the index: the log sources of each product."""
    groups = Grouping()
    for entry in data.entries:
        for logsource in _logsources(entry):
            groups.add(key_slug(logsource.label), logsource.label, entry.slug, logsource)
    listings = []
    products: dict[str, list[dict]] = defaultdict(list)
    for group in groups.values():
        logsource = group.sample
        label = logsource.label
        path = item_path("logsources", label)
        products[logsource.product or ""].append({"category": logsource.category or "", "service": logsource.service or "",
                                                  "label": label, "count": len(group.slugs), "path": path})
        listings.append((group.slugs, (path, ("Log sources", "logsources"), f"Log source: {label}",
                                       f"Sigma rules for the log source {label}", None)))
    listing = [
        {"product": product or "(any product)", "count": sum(item["count"] for item in items),
         "sources": sorted(items, key=lambda item: (item["category"], item["service"]))}
        for product, items in products.items()
    ]
    listing.sort(key=lambda product: (-product["count"], product["product"]))
    return listings, listing


def add_listing_pages(data: SiteData, site: Site) -> None:
    """All rules (first in the navigation), and the correlations and filters when there are any."""
    all_rules = data.lists.context(entry.slug for entry in data.entries)
    site.browse.insert(0, browse_page(RULES, "All rules", "rules.html", {"list": all_rules}))
    for kind, section, title in (("correlation", "correlations", "Correlations"), ("filter", "filters", "Filters")):
        rows = []
        for entry in data.entries:
            if entry.document.kind == kind:
                rows.append(dict(data.rows[entry.slug], targets=[data.rows[t.slug] for t in entry.targets]))
        if rows:
            site.browse.append(browse_page(f"{section}/", title, "kinds.html", {"heading": title, "kind": kind, "rules": rows}))


def add_problem_page(data: SiteData, site: Site) -> None:
    first_entry: dict[str, str] = {}
    for entry in data.entries:
        first_entry.setdefault(entry.document.source.file_display, entry.slug)
    files = {rule_file.display: rule_file.location for rule_file in data.catalog.files}
    problems = sorted(data.catalog.problems, key=lambda p: (p.severity is not Severity.ERROR, p.path, p.line, p.column))
    rows = [
        {
            "location": data.location(problem),
            "severity": problem.severity.value,
            "message": problem.message,
            "code": problem.code,
            "path": rule_path(first_entry[problem.path]) if problem.path in first_entry else None,
            "excerpt": _excerpt(files.get(problem.path), problem.line) if data.preview and problem.code == Code.YAML else None,
        }
        for problem in problems[:PROBLEM_ROWS]
    ]
    by_code = Counter((problem.code, problem.severity.value) for problem in problems)
    listed = Counter((row["code"], row["severity"]) for row in rows)
    codes = [{"code": code, "severity": severity, "count": count, "listed": listed[code, severity]}
             for (code, severity), count in sorted(by_code.items())]
    context = {"problems": rows, "more": max(0, len(problems) - PROBLEM_ROWS), "catalog_json": CATALOG_JSON, "by_code": codes}
    site.redirects[OLD_PROBLEMS] = PROBLEMS
    site.browse.append(browse_page(PROBLEMS, "Problems", "errors.html", {**context, **severity_counts(problems)}))


#: Lines shown around a YAML error in a preview build, and the width each is cut to.
EXCERPT_CONTEXT = 3
EXCERPT_WIDTH = 200


def _excerpt(path: str | None, line: int) -> list[dict] | None:
    """The lines around `line` of a file whose YAML could not be read (the template escapes them);
    a preview build shows them so the author sees what to fix without opening the file."""
    if path is None or line < 1:
        return None
    try:
        with open(path, "rb") as stream:  # only the lines up to the error's context are read
            lines = []
            for number, raw in enumerate(stream, 1):
                if number >= line - EXCERPT_CONTEXT:
                    text = raw[: EXCERPT_WIDTH * 4].decode("utf-8", "replace").rstrip("\r\n")
                    lines.append({"number": number, "text": text[:EXCERPT_WIDTH], "here": number == line})
                if number >= line + EXCERPT_CONTEXT - 1:
                    break
    except OSError:
        return None
    return lines or None


def add_home_figures(data: SiteData, site: Site) -> None:
    kinds: dict[str, int] = defaultdict(int)
    for entry in data.entries:
        kinds[entry.document.kind] += 1
    catalog = data.catalog
    site.home.update({
        "files": len(catalog.files),
        "rules": kinds["rule"],
        "correlations": kinds["correlation"],
        "filters": kinds["filter"],
        **severity_counts(catalog.problems),
        "folders": [{"display": f.display, "name": f.name} for f in data.folders.values()],
    })


def add_search_and_exports(site: Site, exports: dict) -> None:
    """The Search page (first in the navigation) and the Exports page (`exports`: its template data)."""
    site.browse.append(browse_page("exports/", "Exports", "exports.html", dict(exports)))
    site.browse.insert(0, browse_page("find/", "Search", "find.html", {}, nav_title="Search"))
