"""What one rule may add to the site: bounded, whatever its size (issue 10).

A rule cannot flood the site with pages of values that only it has: past a cap per rule, its own
tags and detection fields get no page of their own (they stay on its page and in the exports),
with a warning on the rule. Values other rules share are never capped: their pages cost the rule
nothing. The page-side limits (titles on listings, long value lists, big rule bodies) are here
too, named, so that every page cuts at the same points.
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from catalog.model import Detection, FilterRule, Rule, SigmaDocument
from catalog.problems import Code, Problem, Severity

#: Tags and detection fields that only one rule has and that get a page: at most these per rule.
OWN_TAG_PAGES = 50
OWN_FIELD_PAGES = 200
#: A title on listing pages (rule tables, indicator and tag pages): cut to this many characters.
LISTING_TITLE = 200
#: Rows of a rule page's indicator and exclusion tables; the rest are counted and linked. With
#: the two limits below, the page of SigmaHQ's largest rule (4,400 hashes) stays under 200 KB.
TABLE_ROWS = 200
#: Findings listed on the Problems page (errors first); the rest are counted (catalog.json and
#: `catalog check` have them all).
PROBLEM_ROWS = 1_000
#: Characters of one stage body on the rule page (the rule file beside the page has them all).
STAGE_BODY = 8_000
#: Characters of the rule body shown on its page; a longer body is cut at a line end (the whole
#: file is served next to every rule page: `rule.yml`).
RULE_BODY = 50_000
#: Characters of one query on the rule page (a rule of 50,000 values converts to megabytes); a
#: longer query is served whole next to the page and linked instead of copied.
QUERY_TEXT = 8_000


def normal(value: str) -> str:
    """How values are grouped into one page (the same as the site's addresses: case and blanks)."""
    return value.strip().lower()


#: Each detection's normalised fields, while the detection lives: a loader that hands back the
#: same objects for unchanged files (mkdocs serve) does not walk them again on every rule edit.
_detection_fields: "weakref.WeakKeyDictionary[Detection, dict[str, None]]" = weakref.WeakKeyDictionary()


def _tags(document: SigmaDocument) -> dict[str, None]:
    return dict.fromkeys(normal(tag) for tag in document.tags)


def _fields(document: SigmaDocument) -> dict[str, None]:
    if not isinstance(document, (Rule, FilterRule)):
        return {}
    found = _detection_fields.get(document.detection)
    if found is None:
        found = _detection_fields[document.detection] = dict.fromkeys(
            normal(item.field) for identifier in document.detection.identifiers.values() for item in identifier.items
            if item.field is not None)
    return found


@dataclass(slots=True)
class PageCaps:
    """The tags and fields (normalised) that get no page, and the warnings about them."""

    tags: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)


def page_caps(documents: Sequence[SigmaDocument]) -> PageCaps:
    caps = PageCaps()
    for what, cap, values_of, unpaged in (("tags", OWN_TAG_PAGES, _tags, caps.tags), ("detection fields", OWN_FIELD_PAGES, _fields, caps.fields)):
        per_document = [values_of(document) for document in documents]  # each document's keys, once, in order
        users = Counter(key for keys in per_document for key in keys)
        for document, keys in zip(documents, per_document):
            own = [key for key in keys if users[key] == 1]
            if len(own) > cap:
                unpaged.update(own[cap:])
                source = document.source
                caps.problems.append(Problem(
                    source.file_display, source.line, 1, Severity.WARNING, Code.PAGE_CAP,
                    f"{len(own):,} {what} that no other rule has: only the first {cap} get a page of their own",
                ))
    return caps


def cut_text(text: str, limit: int) -> tuple[str, int]:
    """`text` up to `limit` characters, cut at a line end: (the part shown, the lines left out)."""
    if len(text) <= limit:
        return text, 0
    end = text.rfind("\n", 0, limit)
    shown = text[: end if end > 0 else limit]
    rest = len(shown) + 1 if end > 0 else len(shown)  # where the lines left out start
    return shown, text.count("\n", rest) + (0 if text.endswith("\n") else 1)
