"""The compact search index behind our search box.

One JSON file, loaded by the browser on first focus of a search box:

    {"v": 1, "page": "rules/{slug}/",            # how a slug becomes an address
     "values": ["\\wmiclnt.dll", ...],            # every distinct indicator value, once
     "rules": [[slug, title, id, level, kind, [technique ids], [value indexes]], ...]}

Indicator values are shared by many rules, so each is stored once and rules point at it; matching
is case-insensitive, so values that differ only in case are stored once. Very long values (base64
blobs, long regexes) are cut at `MAX_VALUE` characters: a query still finds them by their start.
"""

from __future__ import annotations

import gzip

from catalog.pipeline import Catalog
from catalog.site.addresses import RULE_PATTERN, page_href
from catalog.site.render import html_safe_json

MAX_VALUE = 160
KINDS = {"rule": "r", "correlation": "c", "filter": "f"}


def search_index(catalog: Catalog, directory_urls: bool = True) -> bytes:
    values: dict[str, int] = {}
    spellings: list[str] = []
    rules = []
    for entry in catalog.entries:
        document = entry.document
        techniques: list[str] = []
        if entry.attack is not None:
            techniques = sorted({mapped.technique.id for mapped in entry.attack.techniques} | set(entry.attack.unknown_techniques))
        indexes: set[int] = set()
        if entry.analysis is not None:
            for indicator in entry.analysis.indicators:
                if indicator.field_reference:  # names a field, not a value the rule looks for
                    continue
                value = indicator.value[:MAX_VALUE]
                key = value.lower()
                index = values.get(key)
                if index is None:
                    index = values[key] = len(spellings)
                    spellings.append(value)
                indexes.add(index)
        rules.append([entry.slug, document.title, document.id or "", document.level or "", KINDS.get(document.kind, "r"),
                      techniques, sorted(indexes)])
    data = {"v": 1, "page": page_href(RULE_PATTERN, directory_urls), "values": spellings, "rules": rules}
    return html_safe_json(data)


def gzipped_size(data: bytes) -> int:
    """What the index costs over the wire from a server that compresses JSON."""
    return len(gzip.compress(data, compresslevel=6, mtime=0))
