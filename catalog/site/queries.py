"""Rule pages' queries for real SIEM backends (catalog.conversions) in the build: which targets
run, the findings of rules that do not convert, each page's tabs, the per-target counts.

The plugin option `conversions:` names the targets. Without pySigma or a backend, the build logs one
notice and goes on without queries.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

from catalog import conversions
from catalog.bounds import QUERY_TEXT
from catalog.model import Rule, SigmaDocument
from catalog.pipeline import Catalog, Entry
from catalog.site.addresses import query_file_path
from catalog.site.model import Site, SiteData

log = logging.getLogger("mkdocs.plugins.sigma_catalog")


def start_conversions(names: Sequence[str], cache: Path) -> conversions.Run | None:
    """The conversions of this build, ready to take rule texts as they are read; None without
    targets, or without pySigma or a backend (one notice, and the build goes on without queries)."""
    if not names:
        return None
    try:
        return conversions.Run(conversions.resolve_targets(names), cache)
    except conversions.ConversionSetupError as error:
        # a notice, not a warning: `mkdocs build --strict` must still build a site without the extra
        log.info("sigma-catalog: conversions (%s) left out: %s", ", ".join(names), error)
        return None


def read_documents(run: conversions.Run) -> Callable[[Sequence[SigmaDocument]], None]:
    """What the loader calls with each file's documents: its rules go to the conversions at once."""
    def read(documents: Sequence[SigmaDocument]) -> None:
        for document in documents:
            if isinstance(document, Rule):
                run.add(document.source.raw_text)
    return read


def convert_catalog(catalog: Catalog, run: conversions.Run | None) -> dict[str, list[conversions.Conversion]]:
    """slug -> its conversions; adds an info finding per rule and target without a query."""
    if run is None:
        return {}
    try:
        found = run.finish(conversions.jobs_of(catalog.entries))
    except Exception as error:  # noqa: BLE001 - a worker lost (memory, a backend's crash): no queries, the site still builds
        log.error("sigma-catalog: conversions left out: %s: %s", type(error).__name__, error)
        return {}
    catalog.problems.extend(conversions.findings(catalog.entries, found))
    return found


def queries_context(data: SiteData, entry: Entry) -> list[dict]:
    """The tabs of a rule page: one per target, its query texts (cut past QUERY_TEXT, with the
    whole query's file) or the backend's message."""
    return [
        {"target": c.target, "label": c.label, "backend": c.backend, "pipeline": c.pipeline, "error": c.error,
         "queries": [{"text": text[:QUERY_TEXT], "more": max(0, len(text) - QUERY_TEXT),
                      "file": query_file_path(entry.slug, c.target, number) if len(text) > QUERY_TEXT else None}
                     for number, text in enumerate(c.queries)]}
        for c in data.conversions.get(entry.slug, ())
    ]


def query_files(data: SiteData, entry: Entry) -> dict[str, str]:
    """The whole text of the rule's queries that its page shows cut: path -> text."""
    return {
        query_file_path(entry.slug, c.target, number): text
        for c in data.conversions.get(entry.slug, ())
        for number, text in enumerate(c.queries)
        if len(text) > QUERY_TEXT
    }


def add_conversion_counts(data: SiteData, site: Site) -> None:
    """Per target, how many rules convert: on the coverage page and the home figures."""
    counts: dict[str, dict] = {}
    for converted in data.conversions.values():
        for conversion in converted:
            row = counts.setdefault(conversion.target, {"label": conversion.label, "converted": 0, "failed": 0, "code": f"no-query-{conversion.target}"})
            row["converted" if conversion.error is None else "failed"] += 1
    if not counts:
        return
    rows = list(counts.values())
    site.home["conversions"] = rows
    for page in site.browse:
        if page.path == "coverage/":
            page.context["conversions"] = rows
