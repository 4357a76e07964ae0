"""The site model: every page of the catalog site, its address, title and template data.

Addresses (all relative to the site root, directory style; see `render.page_href`):

- `rules/<slug>/`           one page per Sigma document (rule, correlation, filter); the slug is
                            `Entry.slug`, taken from the rule id, so a page keeps its address when
                            its file moves or is renamed.
- `rule/<id>/`              a tiny redirect to `rules/<slug>/` for every document with an id, so
                            `/rule/<id>/` links resolve.
- `tactics/<shortname>/`, `techniques/<t1059-001>/`, `indicators/<hash>/`, `authors/<key>/`,
  `tags/<key>/`, `fields/<key>/`, `logsources/<key>/`, `levels/<key>/`, `statuses/<key>/`
                            one page per item of each browse dimension.
- `<section>/`              the browse index pages (in the navigation; MkDocs builds them).

Every page the plugin writes itself sits exactly two folders deep, so one captured theme frame
fits them all. Keys come from `key_slug`: lower-case ASCII letters, digits and dashes only.

Template data is plain Python data (str, int, bool, None, lists, tuples, dicts), so a page's
fingerprint is a hash of it and unchanged pages are not rendered again.
"""

from __future__ import annotations

import functools
import hashlib
import marshal
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

from catalog.analysis import Exclusion, IndicatorKey, exclusions_of
from catalog.model import CorrelationRule, FilterRule, Rule, SigmaDocument
from catalog.pipeline import Catalog, Entry
from catalog.problems import Problem, Severity
from catalog.site.render import external_url

if TYPE_CHECKING:
    from catalog.attack import AttackKnowledge

#: Where the theme frame page lives: as deep as every page we write ourselves.
FRAME_PATH = "sigma-catalog-frame/frame/"
FRAME_SRC_URI = "sigma-catalog-frame/frame/index.md"

ASSETS = "assets/sigma-catalog/"
SEARCH_INDEX = ASSETS + "search-index.json"
EXPORTS = "exports/"
CATALOG_JSON = EXPORTS + "catalog.json"
TECHNIQUES_CSV = EXPORTS + "rules-techniques.csv"
NAVIGATOR = EXPORTS + "navigator/"

_CLEAN_KEY = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_SAFE_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_TECHNIQUE_ID = re.compile(r"T\d{4}(?:\.\d{3})?")


@functools.lru_cache(maxsize=65536)
def key_slug(text: str) -> str:
    """A safe, stable address part for any text: itself when already clean, else slug + hash."""
    lowered = text.strip().lower()
    if len(lowered) <= 60 and _CLEAN_KEY.fullmatch(lowered):
        return lowered
    digest = hashlib.sha1(lowered.encode("utf-8")).hexdigest()
    base = _NOT_SLUG.sub("-", lowered).strip("-")[:48].strip("-")
    return f"{base}-{digest[:8]}" if base else digest[:12]


def technique_slug(technique_id: str) -> str:
    if _TECHNIQUE_ID.fullmatch(technique_id):
        return technique_id.lower().replace(".", "-")
    return key_slug(technique_id)


def indicator_slug(key: IndicatorKey) -> str:
    """One page per shared indicator: its address is a hash of the normalised (field, kind, value)."""
    return hashlib.sha1("\x1f".join(key).encode("utf-8")).hexdigest()[:16]


def split_authors(author: str | None) -> list[str]:
    """`A (Org), B` -> [`A (Org)`, `B`]: commas and semicolons outside parentheses separate authors."""
    if not author:
        return []
    names, depth, current = [], 0, []
    for char in author:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        if char in ",;" and depth == 0:
            names.append("".join(current))
            current = []
        else:
            current.append(char)
    names.append("".join(current))
    return [name.strip() for name in names if name.strip()]


@dataclass(frozen=True, slots=True)
class Folder:
    """A configured rule folder: `root` as given to `build_catalog`, how to show it, where it lives."""

    root: str
    display: str
    name: str | None = None
    source_url: str | None = None


@dataclass(slots=True)
class Page:
    """One page of the site. `src_uri` is set for the pages MkDocs builds (the browse pages)."""

    path: str  # "rules/<slug>/"; "" for the home page
    title: str
    template: str
    context: dict
    description: str = ""
    src_uri: str | None = None
    nav_title: str | None = None
    wide: bool = False  # a browse page that needs the whole width (the theme's sidebars hidden)
    _fingerprint: bytes | None = field(default=None, repr=False, compare=False)

    def fingerprint(self) -> bytes:
        """A hash of everything the page is made of, computed once (pages are not changed after
        the site model is built; a page that is must be a new Page). marshal format 0 has no
        back-references, so its bytes depend only on the data (formats 1+ and pickle also encode
        which objects happen to be shared, and would make equal pages look different)."""
        if self._fingerprint is None:
            data = marshal.dumps((self.template, self.title, self.description, self.context), 0)
            self._fingerprint = hashlib.blake2b(data, digest_size=16).digest()
        return self._fingerprint


@dataclass(slots=True)
class Site:
    pages: list[Page] = field(default_factory=list)  # written by the plugin
    browse: list[Page] = field(default_factory=list)  # built by MkDocs, in nav order
    redirects: dict[str, str] = field(default_factory=dict)  # path -> target path
    home: dict = field(default_factory=dict)  # the figures shown on the home page


def _row(value: object) -> str:
    return "" if value is None else str(value)


class SiteBuilder:
    """Turns a `Catalog` into a `Site`; one instance per build."""

    def __init__(
        self,
        catalog: Catalog,
        folders: Sequence[Folder] = (),
        kb: "AttackKnowledge | None" = None,
        site_name: str = "Detection rules",
        memo: dict | None = None,
    ) -> None:
        self.catalog = catalog
        #: Rule pages of the previous build (mkdocs serve): slug -> (dependency key, Page). Pages
        #: from it are shared between builds, so nothing may change them afterwards.
        self.memo = memo
        self.kb = kb
        self.site_name = site_name
        self.folders = {folder.root: folder for folder in folders}
        self.entries = catalog.entries
        self.by_slug = {entry.slug: entry for entry in self.entries}
        self.rows = {entry.slug: self._entry_row(entry) for entry in self.entries}
        self.problems_by_file: dict[str, list[Problem]] = defaultdict(list)
        for problem in catalog.problems:
            self.problems_by_file[problem.path].append(problem)
        self.related_from: dict[str, list[tuple[str, Entry]]] = defaultdict(list)
        for entry in self.entries:
            for relation, target in entry.related:
                if target is not None:
                    self.related_from[target.slug].append((relation, entry))
        self.site = Site()

    # -- helpers -------------------------------------------------------------------------------

    def display_file(self, root: str, relative: str) -> str:
        folder = self.folders.get(root)
        base = folder.display if folder is not None else root
        return f"{base.rstrip('/')}/{relative}" if base not in ("", ".") else relative

    def display_problem_path(self, path: str) -> str:
        for root, folder in self.folders.items():
            prefix = root.rstrip("/") + "/"
            if path.startswith(prefix):
                return self.display_file(root, path[len(prefix):])
            if path == root:
                return folder.display
        return path

    def _entry_row(self, entry: Entry) -> dict:
        document = entry.document
        return {
            "path": f"rules/{entry.slug}/",
            "title": document.title,
            "level": _row(document.level),
            "status": _row(document.status),
            "kind": document.kind,
        }

    def rule_rows(self, slugs: Iterable[str]) -> list[dict]:
        return [self.rows[slug] for slug in slugs]

    # -- the whole site ------------------------------------------------------------------------

    def build(self) -> Site:
        for entry in self.entries:
            self.site.pages.append(self.entry_page(entry))
            rule_id = (entry.document.id or "").strip().lower()
            if rule_id and _SAFE_ID.fullmatch(rule_id) and len(rule_id) <= 100:
                self.site.redirects.setdefault(f"rule/{rule_id}/", f"rules/{entry.slug}/")
        self.attack_pages()
        self.indicator_pages()
        self.dimension_pages()
        self.field_pages()
        self.logsource_pages()
        self.listing_pages()
        self.problem_page()
        self.home_page()
        order = ["find/", "rules/", "attack/", "coverage/", "logsources/", "levels/", "statuses/", "authors/", "tags/",
                 "fields/", "indicators/", "correlations/", "filters/", "errors/", "exports/"]
        self.site.browse.sort(key=lambda page: order.index(page.path) if page.path in order else len(order))
        if self.memo is not None:
            for slug in [slug for slug in self.memo if slug not in self.by_slug]:
                del self.memo[slug]
        return self.site

    # -- one Sigma document --------------------------------------------------------------------

    def dependencies(self, entry: Entry) -> tuple:
        """Everything a rule page (and its catalog.json record) is made of, for `memo`.

        The document comes first: a rule file that did not change is the very same object (the
        plugin's load cache), so the comparison is an identity check; a changed one compares field
        by field. Then what other rules contribute: corpus counts, links and their titles.
        """
        document = entry.document
        analysis = entry.analysis
        corpus = self.catalog.corpus
        return (
            document,
            entry.slug,
            tuple(corpus.count(i.key) for i in analysis.indicators) if analysis is not None and isinstance(document, Rule) else (),
            tuple((relation, t.slug, t.document.title) if t is not None else (relation,) for relation, t in entry.related),
            tuple((relation, e.slug, e.document.title) for relation, e in self.related_from.get(entry.slug, ())),
            tuple((e.slug, e.document) for e in entry.targets),
            tuple((e.slug, e.document) for e in entry.correlations),
            tuple((e.slug, e.document) for e in entry.filters),
            tuple(self.problems_by_file.get(document.source.file_display, ())),
        )

    def entry_page(self, entry: Entry) -> Page:
        if self.memo is None:
            return self._entry_page(entry)
        key = self.dependencies(entry)
        cached = self.memo.get(entry.slug)
        if cached is None or cached[0] != key:
            cached = (key, self._entry_page(entry))
        self.memo[entry.slug] = cached
        return cached[1]  # the same object: its fingerprint is computed once

    def _entry_page(self, entry: Entry) -> Page:
        document = entry.document
        context: dict = {
            "kind": document.kind,
            "title": document.title,
            "description": document.description or "",
            "banners": self.banners(entry),
            "attack": self.attack_context(entry),
            "raw": document.source.raw_text,
            "stages": [],
            "aggregations": [],
            "exclusions": [],
            "indicators": [],
            "correlation": None,
            "filter": None,
            "details": self.details(entry),
            "problems": [
                {"location": self.location(p), "severity": p.severity.value, "message": p.message, "code": p.code}
                for p in self.problems_by_file.get(document.source.file_display, ())
                if not p.line or p.line >= document.source.line
            ],
        }
        if entry.analysis is not None:
            analysis = entry.analysis
            context["stages"] = [
                {
                    "number": stage.number,
                    "title": stage.title,
                    "body": stage.body,
                    "condition": stage.number == 0,
                    "all_fields": list(stage.match_all_fields),
                }
                for stage in analysis.stages
            ]
            context["aggregations"] = list(analysis.aggregations)
            context["exclusions"] = self.exclusions(entry)
            context["indicators"] = self.indicators(entry)
        if isinstance(document, CorrelationRule):
            context["correlation"] = self.correlation(entry, document)
        if isinstance(document, FilterRule):
            context["filter"] = {"targets": self.targets(entry, document)}
        return Page(f"rules/{entry.slug}/", document.title, "rule.html", context, _description(document))

    def banners(self, entry: Entry) -> list[dict]:
        document = entry.document
        banners = []
        status = (document.status or "").lower()
        if status == "deprecated":
            banners.append({"kind": "deprecated", "title": "Deprecated", "text": "This rule is deprecated: it is kept for reference and should not be deployed."})
        elif status == "unsupported":
            banners.append({"kind": "unsupported", "title": "Unsupported", "text": "This rule uses features that Sigma converters do not support; it cannot be deployed as it is."})
        placeholders = entry.analysis.placeholders if entry.analysis is not None else ()
        source = document.source
        in_placeholder_folder = "placeholder" in f"{source.root}/{source.path}".lower()
        if placeholders or in_placeholder_folder:
            names = ", ".join(placeholders[:5]) if placeholders else "placeholders"
            banners.append({
                "kind": "placeholder",
                "title": "Placeholder rule",
                "text": f"Values such as {names} are placeholders that each deployment must fill in with its own values.",
            })
        if entry.analysis is not None and entry.analysis.aggregations:
            banners.append({"kind": "legacy", "title": "Legacy aggregation", "text": "The condition ends in a legacy aggregation (| count() ...); Sigma 2 expresses this as a correlation rule."})
        return banners

    def attack_context(self, entry: Entry) -> dict | None:
        mapping = entry.attack
        if mapping is None or mapping.is_empty:
            return None
        release = f"ATT&CK Enterprise v{mapping.release}"
        rows = []
        for row in mapping.rows:
            techniques = []
            for mapped in row.techniques:
                technique = mapped.technique
                notes = []
                if mapped.derived:
                    notes.append("derived: the rule does not tag this tactic")
                if mapped.replaced:
                    notes.append(f"{mapped.replaced} is revoked; shown as its replacement")
                if mapped.deprecated:
                    notes.append(f"deprecated in {release}")
                techniques.append({
                    "id": technique.id,
                    "name": technique.name,
                    "url": technique.url,
                    "path": f"techniques/{technique_slug(technique.id)}/",
                    "notes": notes,
                })
            rows.append({
                "name": row.tactic.name,
                "id": row.tactic.id,
                "path": f"tactics/{key_slug(row.tactic.shortname)}/",
                "techniques": techniques,
            })
        return {
            "release": release,
            "rows": rows,
            "unknown": [
                {"id": technique_id, "path": f"techniques/{technique_slug(technique_id)}/"}
                for technique_id in mapping.unknown_techniques
            ],
            "groups": [{"id": g.id, "name": g.name, "url": g.url} for g in mapping.groups],
            "software": [{"id": s.id, "name": s.name, "url": s.url} for s in mapping.software],
            "other": list(mapping.other_tags),
        }

    def exclusions(self, entry: Entry) -> list[dict]:
        analysis = entry.analysis
        assert analysis is not None
        groups = [self._exclusion(exclusion, None) for exclusion in analysis.exclusions]
        for filter_entry in entry.filters:
            detection = filter_entry.document.detection
            for condition in detection.conditions:
                for exclusion in exclusions_of(condition.expression, detection.identifiers, filter_entry.document.title):
                    groups.append(self._exclusion(exclusion, filter_entry))
        show_headers = len(groups) > 1 or any(
            group["scope"] != "filter" or group["combined"] or group["source"] or group["searches"][0]["and_groups"]
            for group in groups
        )
        for group in groups:
            group["header"] = show_headers
        return groups

    def _exclusion(self, exclusion: Exclusion, source: Entry | None) -> dict:
        """One exclusion as table rows, grouped so that only what excludes on its own is a row.

        Each search (identifier) gives `rows` (single-field alternatives: each value excludes alone)
        and `and_groups` (alternatives of several fields, or `|all`: only together). A combined
        exclusion (`not all of X`, `not (a and b)`) has several searches that exclude only together.
        """
        scope_notes = {
            "main": "main filter: always applies",
            "optional": "optional filter: environment specific",
            "filter": "filter",
        }
        searches = []
        for search in exclusion.searches:
            rows, and_groups = [], []
            for alternative in search.alternatives:
                if len(alternative) == 1 and not alternative[0].match_all:
                    item = alternative[0]
                    rows.extend([item.field_label, item.kind, value] for value in item.values)
                else:
                    and_groups.append([
                        {"field": item.field_label, "kind": item.kind, "values": list(item.values), "all": item.match_all}
                        for item in alternative
                    ])
            searches.append({"identifier": search.identifier, "rows": rows, "and_groups": and_groups})
        return {
            "label": (" and " if exclusion.combined else ", ").join(exclusion.identifiers),
            "scope": exclusion.scope,
            "scope_note": scope_notes.get(exclusion.scope, exclusion.scope),
            "combined": exclusion.combined,
            "source": {"title": source.document.title, "path": f"rules/{source.slug}/"} if source is not None else None,
            "searches": searches,
        }

    def indicators(self, entry: Entry) -> list[dict]:
        analysis = entry.analysis
        assert analysis is not None
        corpus = self.catalog.corpus
        rows = []
        for indicator in analysis.indicators:
            count = corpus.count(indicator.key) if isinstance(entry.document, Rule) else 0
            rows.append({
                "field": indicator.field_label,
                "kind": indicator.kind,
                "value": indicator.value,
                "all": indicator.match_all,
                "count": count,
                "path": f"indicators/{indicator_slug(indicator.key)}/" if count > 1 else None,
            })
        # by operator, then field; values keep the order the rule writes them in
        rows.sort(key=lambda row: (row["kind"], row["field"].casefold(), row["field"]))
        return rows

    def correlation(self, entry: Entry, document: CorrelationRule) -> dict:
        return {
            "type": document.type,
            "timespan": document.timespan,
            "group_by": list(document.group_by),
            "condition": document.condition.text if document.condition else None,
            "generate": document.generate,
            "aliases": [
                {"alias": alias, "fields": [[rule, target] for rule, target in sorted(mapping.items())]}
                for alias, mapping in document.aliases.items()
            ],
            "targets": self.targets(entry, document),
        }

    def targets(self, entry: Entry, document: CorrelationRule | FilterRule) -> list[dict]:
        """The rules a correlation or filter names, linked where the catalog has them."""
        lookup = {}
        for target in entry.targets:
            for reference in (target.document.id, target.document.name):
                if reference:
                    lookup.setdefault(reference.strip().lower(), target)
        found = []
        for reference in document.rules:
            target = lookup.get(reference.strip().lower())
            found.append({"ref": reference, "row": self.rows[target.slug] if target is not None else None})
        return found

    def details(self, entry: Entry) -> list[dict]:
        """The metadata table: (label, items), each item text with an optional internal/external link."""
        document = entry.document
        rows: list[dict] = []

        def add(label: str, items: list[dict], listed: bool = False) -> None:
            if items:
                rows.append({"label": label, "items": items, "list": listed})

        def text(value: str, path: str | None = None, href: str | None = None, code: bool = False) -> dict:
            return {"text": value, "path": path, "href": href, "code": code}

        add("ID", [text(document.id, code=True)] if document.id else [text("none (the address comes from the title)")])
        if document.name:
            add("Name", [text(document.name, code=True)])
        add("Status", [text(document.status, f"statuses/{key_slug(document.status)}/")] if document.status else [])
        add("Level", [text(document.level, f"levels/{key_slug(document.level)}/")] if document.level else [])
        add("Author", [text(name, f"authors/{key_slug(name)}/") for name in split_authors(document.author)])
        add("Date", [text(document.date)] if document.date else [])
        add("Modified", [text(document.modified)] if document.modified else [])
        if isinstance(document, (Rule, FilterRule)):
            logsource = document.logsource
            items = []
            for label, value in (("product", logsource.product), ("category", logsource.category), ("service", logsource.service)):
                if value:
                    items.append(text(f"{label}: {value}"))
            if items:
                items.append(text(logsource.label, f"logsources/{key_slug(logsource.label)}/"))
            if logsource.definition:
                items.append(text(f"definition: {logsource.definition}"))
            add("Log source", items)
        add("References", [text(ref, href=external_url(ref)) for ref in dict.fromkeys(document.references)], listed=True)
        add("False positives", [text(item) for item in document.falsepositives], listed=True)
        add("Tags", [text(tag, f"tags/{key_slug(tag)}/") for tag in document.tags])
        related = []
        for relation, target in entry.related:
            if target is not None:
                related.append(text(f"{relation}: {target.document.title}", f"rules/{target.slug}/"))
        linked_ids = {(target.document.id or "").lower() for _, target in entry.related if target is not None}
        for item in document.related:
            if item.id.strip().lower() not in linked_ids:
                related.append(text(f"{item.type}: {item.id} (not in this catalog)"))
        add("Related rules", related, listed=True)
        add("Related from", [text(f"{relation}: {other.document.title}", f"rules/{other.slug}/") for relation, other in self.related_from.get(entry.slug, ())], listed=True)
        add("Correlations", [text(other.document.title, f"rules/{other.slug}/") for other in entry.correlations], listed=True)
        add("Filters", [text(other.document.title, f"rules/{other.slug}/") for other in entry.filters], listed=True)
        add("Fields", [text(name, code=True) for name in document.fields])
        add("License", [text(document.license)] if document.license else [])
        source = document.source
        file_items = [text(self.display_file(source.root, source.path), code=True)]
        if source.documents_in_file > 1:
            file_items.append(text(f"document {source.document + 1} of {source.documents_in_file}, line {source.line}"))
        folder = self.folders.get(source.root)
        if folder is not None and folder.source_url:
            base = folder.source_url.rstrip("/")
            view = external_url(f"{base}/{_quote_path(source.path)}")
            if view is not None:
                file_items.append(text("view source", href=view))
                edit = external_url(view.replace("/blob/", "/edit/", 1)) if "/blob/" in view else None
                if edit is not None:
                    file_items.append(text("edit", href=edit))
        if folder is not None and folder.name:
            file_items.append(text(f"from {folder.name}"))
        add("Source file", file_items)
        return rows

    def location(self, problem: Problem) -> str:
        """`file:line:column` of a problem, the file named as the configuration names its folder."""
        path = self.display_problem_path(problem.path)
        if problem.line:
            return f"{path}:{problem.line}:{problem.column or 1}"
        return path

    # -- ATT&CK ----------------------------------------------------------------------------------

    def attack_pages(self) -> None:
        kb = self.kb
        by_technique: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)  # id -> [(slug, tactic names)]
        per_tactic: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))  # shortname -> id -> slugs
        techniques: dict[str, object] = {}
        unknown: dict[str, list[str]] = defaultdict(list)
        tactics_used: dict[str, object] = {}
        for entry in self.entries:
            mapping = entry.attack
            if mapping is None:
                continue
            seen: dict[str, list[str]] = {}
            for row in mapping.rows:
                tactics_used[row.tactic.shortname] = row.tactic
                for mapped in row.techniques:
                    technique = mapped.technique
                    techniques[technique.id] = technique
                    names = seen.setdefault(technique.id, [])
                    label = row.tactic.name + (" (derived)" if mapped.derived else "")
                    if label not in names:
                        names.append(label)
                    per_tactic[row.tactic.shortname][technique.id].add(entry.slug)
            for technique_id, names in seen.items():
                by_technique[technique_id].append((entry.slug, names))
            for technique_id in mapping.unknown_techniques:
                if entry.slug not in unknown[technique_id]:
                    unknown[technique_id].append(entry.slug)

        release = f"ATT&CK Enterprise v{kb.release}" if kb is not None else "ATT&CK"
        tactic_list = list(kb.tactics) if kb is not None else list(tactics_used.values())
        all_techniques = list(kb.all_techniques) if kb is not None else list(techniques.values())
        children: dict[str, list] = defaultdict(list)
        for technique in all_techniques:
            if technique.parent and not technique.revoked and not technique.deprecated:
                children[technique.parent].append(technique)
        by_id = {t.id: t for t in all_techniques}

        # technique pages: every technique a rule maps, and every parent of one
        page_ids = set(by_technique) | {t.parent for t in techniques.values() if t.parent}
        for tid in sorted(page_ids):
            technique = by_id.get(tid) or techniques.get(tid)
            if technique is None:
                continue
            rows = [dict(self.rows[slug], tactics=names) for slug, names in by_technique.get(tid, ())]
            subs = [
                {"id": sub.id, "name": sub.name, "count": len(by_technique.get(sub.id, ())),
                 "path": f"techniques/{technique_slug(sub.id)}/" if sub.id in page_ids else None}
                for sub in sorted(children.get(tid, ()), key=lambda t: t.id)
            ]
            parent = by_id.get(technique.parent) if technique.parent else None
            context = {
                "id": technique.id,
                "name": technique.name,
                "mitre_url": technique.url,
                "release": release,
                "tactics": [
                    {"name": tactic.name, "path": f"tactics/{key_slug(tactic.shortname)}/"}
                    for tactic in tactic_list
                    if tactic.shortname in technique.tactics
                ],
                "parent": {"id": parent.id, "name": parent.name, "path": f"techniques/{technique_slug(parent.id)}/"} if parent else None,
                "subtechniques": subs,
                "rules": rows,
                "deprecated": technique.deprecated,
                "unknown": False,
            }
            self.site.pages.append(Page(f"techniques/{technique_slug(tid)}/", f"{technique.id} {technique.name}", "technique.html", context,
                                        f"Sigma rules mapped to ATT&CK technique {technique.id} {technique.name}"))
        for tid, slugs in sorted(unknown.items()):
            if tid in page_ids:
                continue
            context = {
                "id": tid, "name": "", "mitre_url": None, "release": release, "tactics": [], "parent": None,
                "subtechniques": [], "rules": [dict(self.rows[slug], tactics=[]) for slug in slugs],
                "deprecated": False, "unknown": True,
            }
            self.site.pages.append(Page(f"techniques/{technique_slug(tid)}/", tid, "technique.html", context, f"Sigma rules tagged with {tid}"))

        # tactic pages and the ATT&CK index
        tactic_rows = []
        for tactic in tactic_list:
            used = per_tactic.get(tactic.shortname, {})
            rule_slugs = set().union(*used.values()) if used else set()
            items = []
            for tid in sorted(used, key=lambda i: (by_id[i].name if i in by_id else i, i)):
                technique = by_id.get(tid) or techniques[tid]
                items.append({"id": tid, "name": technique.name, "count": len(used[tid]), "path": f"techniques/{technique_slug(tid)}/"})
            path = f"tactics/{key_slug(tactic.shortname)}/"
            tactic_rows.append({"id": tactic.id, "name": tactic.name, "path": path, "techniques": len(items), "rules": len(rule_slugs)})
            self.site.pages.append(Page(path, f"{tactic.name} ({tactic.id})", "tactic.html", {
                "id": tactic.id, "name": tactic.name, "mitre_url": tactic.url, "release": release, "techniques": items,
                "rules": len(rule_slugs),
            }, f"ATT&CK tactic {tactic.name}: techniques and Sigma rules"))
        self.site.browse.append(Page("attack/", "ATT&CK", "attack.html", {
            "release": release,
            "tactics": tactic_rows,
            "unknown": [{"id": tid, "count": len(slugs), "path": f"techniques/{technique_slug(tid)}/"} for tid, slugs in sorted(unknown.items())],
        }, src_uri="attack/index.md", nav_title="ATT&CK tactics"))

        # the coverage matrix: every current technique of each tactic, shaded by rule count
        columns = []
        maximum = 1
        for tactic in tactic_list:
            used = per_tactic.get(tactic.shortname, {})
            cells = []
            for technique in all_techniques:
                if technique.parent or technique.revoked or technique.deprecated or tactic.shortname not in technique.tactics:
                    continue
                slugs: set[str] = set(used.get(technique.id, ()))
                for sub in children.get(technique.id, ()):
                    slugs |= used.get(sub.id, set())
                count = len(slugs)
                maximum = max(maximum, count)
                cells.append({"id": technique.id, "name": technique.name, "count": count,
                              "path": f"techniques/{technique_slug(technique.id)}/" if count and technique.id in page_ids else None})
            cells.sort(key=lambda cell: cell["name"].casefold())
            columns.append({"name": tactic.name, "id": tactic.id, "path": f"tactics/{key_slug(tactic.shortname)}/", "cells": cells,
                            "covered": sum(1 for cell in cells if cell["count"])})
        for column in columns:
            for cell in column["cells"]:
                cell["shade"] = 0 if not cell["count"] else 1 + min(4, int(4 * math.log1p(cell["count"]) / math.log1p(maximum)))
        self.site.browse.append(Page("coverage/", "Coverage matrix", "coverage.html", {"release": release, "columns": columns, "maximum": maximum},
                                     src_uri="coverage/index.md", wide=True))
        self.site.home["tactics_covered"] = sum(1 for row in tactic_rows if row["rules"])
        self.site.home["tactics_total"] = len(tactic_list)
        self.site.home["techniques_covered"] = len(by_technique)
        self.site.home["parent_techniques_covered"] = sum(1 for column in columns for cell in column["cells"] if cell["count"])
        self.site.home["release"] = kb.release if kb is not None else None

    # -- shared indicators -----------------------------------------------------------------------

    def indicator_pages(self) -> None:
        spelling: dict[IndicatorKey, tuple[str, str]] = {}
        for entry in self.entries:
            if entry.analysis is not None and isinstance(entry.document, Rule):
                for indicator in entry.analysis.indicators:
                    spelling.setdefault(indicator.key, (indicator.field_label, indicator.value))
        shared = self.catalog.corpus.shared()
        top = []
        for key, slugs in shared:
            field_label, value = spelling.get(key, (key[0] or "(keyword)", key[2]))
            path = f"indicators/{indicator_slug(key)}/"
            title = f"{field_label} {key[1]} {value}"
            self.site.pages.append(Page(path, _shorten(title, 120), "indicator.html", {
                "field": field_label, "kind": key[1], "value": value, "count": len(slugs), "rules": self.rule_rows(slugs),
            }, f"{len(slugs)} Sigma rules look for {field_label} {key[1]} {_shorten(value, 80)}"))
            if len(top) < 500:
                top.append({"field": field_label, "kind": key[1], "value": value, "count": len(slugs), "path": path})
        self.site.browse.append(Page("indicators/", "Shared indicators", "indicators.html", {"top": top, "total": len(shared), "distinct": len(self.catalog.corpus)},
                                     src_uri="indicators/index.md"))
        self.site.home["shared_indicators"] = len(shared)
        self.site.home["indicators"] = len(self.catalog.corpus)

    # -- level, status, author, tag ----------------------------------------------------------------

    def dimension_pages(self) -> None:
        dimensions = (
            ("levels", "Levels", "Level", lambda d: [d.level] if d.level else []),
            ("statuses", "Statuses", "Status", lambda d: [d.status] if d.status else []),
            ("authors", "Authors", "Author", lambda d: split_authors(d.author)),
            ("tags", "Tags", "Tag", lambda d: list(d.tags)),
        )
        order = {
            "levels": ["critical", "high", "medium", "low", "informational"],
            "statuses": ["stable", "test", "experimental", "deprecated", "unsupported"],
        }
        for section, title, singular, values in dimensions:
            groups: dict[str, dict] = {}
            for entry in self.entries:
                for value in dict.fromkeys(values(entry.document)):
                    key = key_slug(value)
                    group = groups.setdefault(key, {"names": {}, "slugs": []})
                    group["names"][value] = group["names"].get(value, 0) + 1
                    if not group["slugs"] or group["slugs"][-1] != entry.slug:
                        group["slugs"].append(entry.slug)
            items = []
            for key, group in groups.items():
                name = max(group["names"], key=lambda n: (group["names"][n], n))
                path = f"{section}/{key}/"
                items.append({"name": name, "count": len(group["slugs"]), "path": path})
                self.site.pages.append(Page(path, f"{singular}: {name}", "list.html", {
                    "heading": f"{singular}: {name}", "section": {"title": title, "path": f"{section}/"},
                    "intro": None, "rules": self.rule_rows(group["slugs"]),
                }, f"Sigma rules with {singular.lower()} {name}"))
            rank = order.get(section)
            if rank:
                items.sort(key=lambda item: (rank.index(item["name"].lower()) if item["name"].lower() in rank else len(rank), item["name"]))
            elif section == "tags":
                items.sort(key=lambda item: item["name"].casefold())
            else:
                items.sort(key=lambda item: (-item["count"], item["name"].casefold()))
            self.site.browse.append(Page(f"{section}/", title, "counts.html", {"heading": title, "items": items, "singular": singular},
                                         src_uri=f"{section}/index.md"))
            self.site.home[section] = len(items)

    # -- fields ------------------------------------------------------------------------------------

    def field_pages(self) -> None:
        groups: dict[str, dict] = {}
        for entry in self.entries:
            document = entry.document
            if not isinstance(document, (Rule, FilterRule)):
                continue
            seen = set()
            for identifier in document.detection.identifiers.values():
                for item in identifier.items:
                    if item.field is None:
                        continue
                    key = key_slug(item.field)
                    group = groups.setdefault(key, {"names": {}, "slugs": []})
                    group["names"][item.field] = group["names"].get(item.field, 0) + 1
                    if key not in seen:
                        seen.add(key)
                        group["slugs"].append(entry.slug)
        items = []
        for key, group in groups.items():
            name = max(group["names"], key=lambda n: (group["names"][n], n))
            spellings = sorted(group["names"])
            path = f"fields/{key}/"
            items.append({"name": name, "count": len(group["slugs"]), "path": path})
            intro = f"Also written as: {', '.join(s for s in spellings if s != name)}." if len(spellings) > 1 else None
            self.site.pages.append(Page(path, f"Field: {name}", "list.html", {
                "heading": f"Field: {name}", "section": {"title": "Fields", "path": "fields/"}, "intro": intro,
                "rules": self.rule_rows(group["slugs"]),
            }, f"Sigma rules that read the field {name}"))
        items.sort(key=lambda item: (-item["count"], item["name"].casefold()))
        self.site.browse.append(Page("fields/", "Fields", "counts.html", {"heading": "Fields", "items": items, "singular": "Field"},
                                     src_uri="fields/index.md"))
        self.site.home["fields"] = len(items)

    # -- log sources -------------------------------------------------------------------------------

    def logsource_pages(self) -> None:
        groups: dict[str, dict] = {}
        for entry in self.entries:
            document = entry.document
            if not isinstance(document, (Rule, FilterRule)):
                continue
            logsource = document.logsource
            key = key_slug(logsource.label)
            group = groups.setdefault(key, {"product": logsource.product or "", "category": logsource.category or "",
                                            "service": logsource.service or "", "label": logsource.label, "slugs": []})
            group["slugs"].append(entry.slug)
        products: dict[str, list[dict]] = defaultdict(list)
        for key, group in groups.items():
            path = f"logsources/{key}/"
            products[group["product"]].append({"category": group["category"], "service": group["service"], "label": group["label"],
                                               "count": len(group["slugs"]), "path": path})
            self.site.pages.append(Page(path, f"Log source: {group['label']}", "list.html", {
                "heading": f"Log source: {group['label']}", "section": {"title": "Log sources", "path": "logsources/"},
                "intro": None, "rules": self.rule_rows(group["slugs"]),
            }, f"Sigma rules for the log source {group['label']}"))
        listing = [
            {"product": product or "(any product)", "count": sum(item["count"] for item in items),
             "sources": sorted(items, key=lambda item: (item["category"], item["service"]))}
            for product, items in products.items()
        ]
        listing.sort(key=lambda product: (-product["count"], product["product"]))
        self.site.browse.append(Page("logsources/", "Log sources", "logsources.html", {"products": listing}, src_uri="logsources/index.md"))
        self.site.home["logsources"] = len(groups)

    # -- whole-catalog listings --------------------------------------------------------------------

    def listing_pages(self) -> None:
        all_rows = [dict(self.rows[entry.slug], logsource=entry.document.logsource.label if isinstance(entry.document, (Rule, FilterRule)) else "")
                    for entry in self.entries]
        self.site.browse.insert(0, Page("rules/", "All rules", "rules.html", {"rules": all_rows}, src_uri="rules/index.md"))
        for kind, section, title in (("correlation", "correlations", "Correlations"), ("filter", "filters", "Filters")):
            rows = []
            for entry in self.entries:
                if entry.document.kind == kind:
                    rows.append(dict(self.rows[entry.slug], targets=[self.rows[t.slug] for t in entry.targets]))
            if rows:
                self.site.browse.append(Page(f"{section}/", title, "kinds.html", {"heading": title, "kind": kind, "rules": rows},
                                             src_uri=f"{section}/index.md"))

    def problem_page(self) -> None:
        first_entry: dict[str, str] = {}
        for entry in self.entries:
            first_entry.setdefault(entry.document.source.file_display, entry.slug)
        problems = sorted(self.catalog.problems, key=lambda p: (p.severity is not Severity.ERROR, p.path, p.line, p.column))
        rows = [
            {
                "location": self.location(problem),
                "severity": problem.severity.value,
                "message": problem.message,
                "code": problem.code,
                "path": f"rules/{first_entry[problem.path]}/" if problem.path in first_entry else None,
            }
            for problem in problems
        ]
        errors = sum(1 for problem in problems if problem.severity is Severity.ERROR)
        self.site.browse.append(Page("errors/", "Problems", "errors.html", {"problems": rows, "errors": errors, "warnings": len(rows) - errors},
                                     src_uri="errors/index.md"))

    def home_page(self) -> None:
        kinds = defaultdict(int)
        for entry in self.entries:
            kinds[entry.document.kind] += 1
        errors = len(self.catalog.errors)
        self.site.home.update({
            "files": len(self.catalog.files),
            "rules": kinds["rule"],
            "correlations": kinds["correlation"],
            "filters": kinds["filter"],
            "errors": errors,
            "warnings": len(self.catalog.problems) - errors,
            "folders": [{"display": f.display, "name": f.name} for f in self.folders.values()],
        })
        self.site.browse.append(Page("exports/", "Exports", "exports.html", {"products": []}, src_uri="exports/index.md"))
        self.site.browse.insert(0, Page("find/", "Search", "find.html", {}, src_uri="find/index.md", nav_title="Search"))


def _description(document: SigmaDocument) -> str:
    return _shorten(" ".join((document.description or document.title).split()), 300)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote_path(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def build_site(catalog: Catalog, folders: Sequence[Folder] = (), kb: "AttackKnowledge | None" = None, site_name: str = "Detection rules") -> Site:
    return SiteBuilder(catalog, folders, kb, site_name).build()
