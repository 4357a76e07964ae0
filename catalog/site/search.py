"""The compact search index behind our search box and the Search page.

One JSON file, loaded by the browser on first focus of a search box:

    {"v": 2, "page": "rules/{slug}/",            # how a slug becomes an address
     "values": ["\\wmiclnt.dll", ...],            # every distinct indicator value, once
     "names": ["Execution", "windows / image_load", "Florian Roth", ...],   # other shared text, once
     "rules": [[slug, title, id, level, kind, [technique ids], [value indexes], status,
                log source (a name index, -1 for none), [tactic name indexes],
                [name indexes of technique names, authors and tags], description], ...]}

Indicator values and names are shared by many rules, so each is stored once and rules point at
it; matching is case-insensitive, so values that differ only in case are stored once. Very long
values (base64 blobs, long regexes) are cut at `MAX_VALUE` characters, descriptions at
`MAX_DESCRIPTION`: a query still finds them by their start.
"""

from __future__ import annotations

import gzip

from catalog.model import FilterRule, Rule
from catalog.pipeline import Catalog, Entry
from catalog.site.addresses import RULE_PATTERN, page_href
from catalog.site.model import shorten, split_authors
from catalog.site.render import html_safe_json

MAX_VALUE = 160
MAX_DESCRIPTION = 240
KINDS = {"rule": "r", "correlation": "c", "filter": "f"}


class _Strings:
    """A table of distinct strings (case-insensitive); `index` gives a string's place in it."""

    def __init__(self) -> None:
        self.places: dict[str, int] = {}
        self.spellings: list[str] = []

    def index(self, text: str) -> int:
        key = text.lower()
        place = self.places.get(key)
        if place is None:
            place = self.places[key] = len(self.spellings)
            self.spellings.append(text)
        return place


def search_index(catalog: Catalog, directory_urls: bool = True) -> bytes:
    values, names = _Strings(), _Strings()
    rules = [_rule(entry, values, names) for entry in catalog.entries]
    data = {"v": 2, "page": page_href(RULE_PATTERN, directory_urls), "values": values.spellings, "names": names.spellings,
            "rules": rules}
    return html_safe_json(data)


def _rule(entry: Entry, values: _Strings, names: _Strings) -> list:
    document = entry.document
    techniques: list[str] = []
    tactics: list[int] = []
    words: set[int] = set()
    if entry.attack is not None:
        techniques = sorted({mapped.technique.id for mapped in entry.attack.techniques} | set(entry.attack.unknown_techniques))
        tactics = list(dict.fromkeys(names.index(row.tactic.name) for row in entry.attack.rows))
        words.update(names.index(mapped.technique.name) for mapped in entry.attack.techniques)
    words.update(names.index(author) for author in split_authors(document.author))
    words.update(names.index(tag) for tag in document.tags)
    indexes = set()
    if entry.analysis is not None:
        indexes = {values.index(indicator.value[:MAX_VALUE]) for indicator in entry.analysis.indicators
                   if not indicator.field_reference}  # a field reference names a field, not a value the rule looks for
    logsource = names.index(document.logsource.label) if isinstance(document, (Rule, FilterRule)) else -1
    description = shorten(" ".join((document.description or "").split()), MAX_DESCRIPTION)
    return [entry.slug, document.title, document.id or "", document.level or "", KINDS.get(document.kind, "r"),
            techniques, sorted(indexes), document.status or "", logsource, tactics, sorted(words), description]


def gzipped_size(data: bytes) -> int:
    """What the index costs over the wire from a server that compresses JSON."""
    return len(gzip.compress(data, compresslevel=6, mtime=0))
