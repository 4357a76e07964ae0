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
from typing import Callable, Collection, Iterable, Sequence, TypeVar

from catalog.model import FilterRule, Rule
from catalog.pipeline import Entry
from catalog.site.addresses import RULE_PATTERN, page_href
from catalog.site.render import html_safe_json

T = TypeVar("T")

#: Rows a list page carries in its HTML; longer lists load the rest from rules.json.
HTML_ROWS = 300


class ListRows:
    """The list row of every document of a build, and the compact JSON of them all."""

    def __init__(self, entries: Sequence[Entry], rows: dict[str, dict], display_file: Callable[[str, str], str],
                 previous: "ListRows | None" = None, edited: Collection[str] = ()) -> None:
        """`rows`: the short row of every document (`SiteData.rows`); `display_file` names a rule file;
        `previous`: the last build's (mkdocs serve) of the same documents in the same order, whose
        rows and lists this build reuses where they hold; `edited`: the documents changed since."""
        self._entries = entries
        self._display_file = display_file
        self._short = rows
        self._position = {entry.slug: number for number, entry in enumerate(entries)}
        #: (what, slugs) -> (variant, data) of the lists this build made, for the next build (`_reuse`)
        self._made: dict[tuple[str, tuple[str, ...]], tuple[tuple, object]] = {}
        self._earlier: dict[tuple[str, tuple[str, ...]], tuple[tuple, object]] = {}
        self._changed: set[str] = set()  # documents whose row differs from the previous build's
        self._reused = previous is not None
        if previous is None:
            self._rows = {entry.slug: self._row(entry, rows[entry.slug]) for entry in entries}
        else:
            self._rows = {entry.slug: self._row(entry, rows[entry.slug]) if entry.slug in edited else previous._rows[entry.slug]
                          for entry in entries}
            self._earlier = previous._made
            self._changed = {slug for slug in edited if previous._rows[slug] != self._rows[slug]}

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
        `tested`: the rules to mark as having regression tests. The previous build's data of the same
        list is reused when none of its rows shown changed (mkdocs serve: a rule edit touches few lists,
        and a page whose data is the very same object compares equal at once)."""
        slugs = tuple(slugs)
        shown = slugs[:HTML_ROWS]
        marks = tuple(slug in tested for slug in shown) if tested else ()

        def make() -> dict:
            rows = [dict(self._rows[slug], tested=True) if mark else self._rows[slug]
                    for slug, mark in zip(shown, marks or (False,) * len(shown))]
            positions = [self._position[slug] for slug in slugs] if len(slugs) > HTML_ROWS else None
            return {"rules": rows, "total": len(slugs), "positions": positions}

        return self._reuse(("list", slugs), shown, marks, make)

    def short_rows(self, slugs: Iterable[str]) -> list[dict]:
        """The short rows (`SiteData.rows`) of `slugs`, reused as `context` reuses its lists."""
        slugs = tuple(slugs)
        return self._reuse(("short", slugs), slugs, (), lambda: [self._short[slug] for slug in slugs])

    def _reuse(self, key: tuple[str, tuple[str, ...]], shown: Iterable[str], variant: tuple, make: Callable[[], T]) -> T:
        """`make()`, or the last build's data of `key` when it had the same `variant` (what else it
        is made of) and none of the rows `shown` changed."""
        made = self._earlier.get(key)
        if made is None or made[0] != variant or not self._changed.isdisjoint(shown):
            made = (variant, make())
        self._made[key] = made
        return made[1]  # type: ignore[return-value]

    def unchanged(self, slugs: Iterable[str]) -> bool:
        """Whether the rows of `slugs` are the last build's (always False when there was none)."""
        return self._reused and self._changed.isdisjoint(slugs)

    def row(self, slug: str) -> dict:
        return self._rows[slug]

    def json(self, directory_urls: bool) -> bytes:
        """rules.json; the last build's when no row changed (mkdocs serve)."""
        return self._reuse(("json", ()), self._rows.keys(), (directory_urls,), lambda: self._json(directory_urls))

    def _json(self, directory_urls: bool) -> bytes:
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
