"""The rule lists of the browse pages (All rules, a technique, a level, an author, ...).

Every list is one table the page's script filters and sorts (level, status, log source, source
folder, tactic, date). A long list keeps its HTML small: the page holds its first `HTML_ROWS` rows
(what a reader without JavaScript sees) and the positions of all its rows in `rules.json`, which
the script loads to show the rest:

    {"v": 1, "page": "rules/{slug}/", "folders": [...], "tactics": [...],
     "rules": [[slug, title, kind, level, status, log source, folder index, [tactic indexes], date], ...]}
"""

from __future__ import annotations

import posixpath
from typing import Callable, Collection, Iterable, Sequence

from catalog.model import FilterRule, Rule
from catalog.pipeline import Entry
from catalog.site.addresses import RULE_PATTERN, page_href
from catalog.site.render import html_safe_json

#: Rows a list page carries in its HTML; longer lists load the rest from rules.json.
HTML_ROWS = 300


class ListRows:
    """The list row of every document of a build, and the compact JSON of them all."""

    def __init__(self, entries: Sequence[Entry], rows: dict[str, dict], display_file: Callable[[str, str], str]) -> None:
        """`rows`: the short row of every document (`SiteData.rows`); `display_file` names a rule file."""
        self._entries = entries
        self._display_file = display_file
        self._position = {entry.slug: number for number, entry in enumerate(entries)}
        self._rows = {entry.slug: self._row(entry, rows[entry.slug]) for entry in entries}

    def _row(self, entry: Entry, short: dict) -> dict:
        document = entry.document
        tactics: list[str] = []
        if entry.attack is not None:
            tactics = list(dict.fromkeys(row.tactic.name for row in entry.attack.rows))
        source = document.source
        folder = posixpath.dirname(self._display_file(source.root, source.path)) or "."
        logsource = document.logsource.label if isinstance(document, (Rule, FilterRule)) else ""
        return dict(short, logsource=logsource, folder=folder, tactics=tactics,
                    date=str(document.modified or document.date or ""))

    def context(self, slugs: Iterable[str], tested: Collection[str] = ()) -> dict:
        """A list's template data: its first rows, its size, and where all its rows are in rules.json;
        `tested`: the rules to mark as having regression tests."""
        slugs = list(slugs)
        rows = [dict(self._rows[slug], tested=True) if slug in tested else self._rows[slug] for slug in slugs[:HTML_ROWS]]
        positions = [self._position[slug] for slug in slugs] if len(slugs) > HTML_ROWS else None
        return {"rules": rows, "total": len(slugs), "positions": positions}

    def row(self, slug: str) -> dict:
        return self._rows[slug]

    def json(self, directory_urls: bool) -> bytes:
        folders: dict[str, int] = {}
        tactics: dict[str, int] = {}
        rules = []
        for entry in self._entries:
            row = self._rows[entry.slug]
            folder = folders.setdefault(row["folder"], len(folders))
            tactic_indexes = [tactics.setdefault(name, len(tactics)) for name in row["tactics"]]
            rules.append([entry.slug, row["title"], row["kind"], row["level"], row["status"], row["logsource"], folder,
                          tactic_indexes, row["date"]])
        return html_safe_json({"v": 1, "page": page_href(RULE_PATTERN, directory_urls), "folders": list(folders),
                               "tactics": list(tactics), "rules": rules})
