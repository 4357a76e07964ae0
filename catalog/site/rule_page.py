"""The page of one Sigma document (rule, correlation, filter): `templates/rule.html`'s data.

Its content and order follow the reference rule page (shared/reference): banners, ATT&CK,
the detection stages, exclusions, indicators, the metadata table, problems, the rule's YAML.
"""

from __future__ import annotations

import functools

from catalog.analysis import Exclusion
from catalog.bounds import LISTING_TITLE, RULE_BODY, STAGE_BODY, TABLE_ROWS, cut_text, normal
from catalog.model import DIALECT_NAMES, CorrelationRule, FilterRule, Rule
from catalog.pipeline import Entry
from catalog.site.addresses import (
    external_url,
    indicator_path,
    item_path,
    rule_file_path,
    rule_path,
    tactic_path,
    technique_path,
)
from catalog.site.condition_tree import add_stage_anchors, trees
from catalog.site.history_pages import history_context
from catalog.site.model import Page, SiteData, author_path, description_of, shorten, split_authors
from catalog.site.overlap import similar_context, similar_dependencies
from catalog.site.queries import queries_context
from catalog.site.rule_facts import facts, host_links

_SCOPE_NOTES = {
    "main": "main filter: always applies",
    "optional": "optional filter: environment specific",
    "filter": "filter",
}


class RulePages:
    """Makes rule pages; under `mkdocs serve`, reuses those of the last build whose inputs did not change."""

    def __init__(self, data: SiteData, memo: dict | None = None) -> None:
        self.data = data
        #: Rule pages of the previous build (mkdocs serve): slug -> (dependency key, Page). Pages
        #: from it are shared between builds, so nothing may change them afterwards.
        self.memo = memo

    def dependencies(self, entry: Entry) -> tuple:
        """Everything a rule page (and its catalog.json record) is made of, for `memo`.

        The document comes first: a rule file that did not change is the very same object (the
        plugin's load cache), so the comparison is an identity check; a changed one compares field
        by field. Then what other rules contribute: corpus counts, links and their titles.
        """
        document = entry.document
        analysis = entry.analysis
        corpus = self.data.catalog.corpus
        return (
            document,
            entry.slug,
            corpus.counts(analysis.indicators) if analysis is not None and isinstance(document, Rule) else (),
            tuple((relation, t.slug, t.document.title) if t is not None else (relation,) for relation, t in entry.related),
            tuple((relation, e.slug, e.document.title) for relation, e in self.data.related_from.get(entry.slug, ())),
            tuple((e.slug, e.document) for e in entry.targets),
            tuple((e.slug, e.document) for e in entry.correlations),
            tuple((e.slug, e.document) for e in entry.filters),
            tuple(self.data.problems_by_file.get(document.source.file_display, ())),
            self.data.records.history.head if self.data.records.history is not None else None,
            len(self.data.records.revisions),  # more commits analysed since (a bounded first build)
            repr(self.data.records.evidence.get(entry.slug)),
            tuple(self.data.conversions.get(entry.slug, ())),
            similar_dependencies(self.data, entry),
        )

    def page(self, entry: Entry) -> Page:
        if self.memo is None:  # a build: the page's data is made when it is rendered
            return rule_page(self.data, entry)
        key = self.dependencies(entry)
        cached = self.memo.get(entry.slug)
        if cached is None or cached[0] != key:
            page = rule_page(self.data, entry)
            page.keep_data()  # kept across serve rebuilds: made now, not from a later build's data
            cached = (key, page)
        self.memo[entry.slug] = cached
        return cached[1]  # the same object: its fingerprint is computed once

    def forget_others(self) -> None:
        """Drop the memo's pages of documents this build does not have."""
        if self.memo is not None:
            for slug in [slug for slug in self.memo if slug not in self.data.by_slug]:
                del self.memo[slug]


def rule_page(data: SiteData, entry: Entry) -> Page:
    """The page; its data is made when it is rendered, and not kept (catalog.bounds): a failure
    making it then costs that page only, as a rendering failure does."""
    document = entry.document
    return Page(rule_path(entry.slug), shorten(document.title, LISTING_TITLE), "rule.html", {}, description_of(document),
                make=functools.partial(rule_context, data, entry))


def rule_context(data: SiteData, entry: Entry) -> dict:
    document = entry.document
    problems = [
        {"location": data.location(p), "severity": p.severity.value, "message": p.message, "code": p.code}
        for p in data.problems_of(document)
    ]
    context: dict = {
        "kind": document.kind,
        "dialect": DIALECT_NAMES.get(document.dialect, document.dialect),
        "title": document.title,
        "description": document.description or "",
        "banners": findings_banner(problems) + banners(entry),
        "attack": attack_context(entry),
        **rule_body(entry),
        "stages": [],
        "aggregations": [],
        "exclusions": [],
        "indicators": [],
        "indicators_more": 0,
        "indicators_specific": 0,  # of all its indicators, those only this rule has
        "shared_indicators": [],  # of those shown, the ones other rules have too
        "specific_indicators": [],
        "correlation": None,
        "filter": None,
        "details": details(data, entry),
        "problems": problems,
        "queries": queries_context(data, entry),
        "similar": similar_context(data, entry),
    }
    # git history and test evidence (history_pages; rule_history.html)
    context["history"] = history_context(data, data.records, entry)
    context["evidence"] = data.records.evidence.get(entry.slug)
    # the facts header under the title (rule_facts), the condition trees (condition_tree)
    context["facts"] = facts(data, entry, context["history"], context["raw_file"])
    context["trees"] = trees(entry)
    if entry.analysis is not None:
        analysis = entry.analysis
        context["stages"] = [
            _stage(stage.number, stage.title, stage.body, list(stage.match_all_fields)) for stage in analysis.stages
        ]
        add_stage_anchors(context["stages"])
        context["aggregations"] = list(analysis.aggregations)
        context["exclusions"] = exclusions(entry)
        rows = indicators(data, entry)
        context["indicators"], context["indicators_more"] = rows[:TABLE_ROWS], max(0, len(rows) - TABLE_ROWS)
        context["shared_indicators"] = [row for row in context["indicators"] if row["count"] > 1]
        context["specific_indicators"] = [row for row in context["indicators"] if row["count"] <= 1]
        context["indicators_specific"] = sum(1 for row in rows if row["count"] <= 1)
    if isinstance(document, CorrelationRule):
        context["correlation"] = correlation(data, entry, document)
    if isinstance(document, FilterRule):
        context["filter"] = {"targets": targets(data, entry, document)}
    return context


# --- the bounds of a rule page (catalog.bounds): long bodies and lists are cut, the rest linked ---


def rule_body(entry: Entry) -> dict:
    """The rule's YAML for the page; past RULE_BODY characters, cut. The whole file is served at
    `raw_file` (the page's Raw, Download and Copy actions; the cut lists link it too)."""
    shown, left_out = cut_text(entry.document.source.raw_text, RULE_BODY)
    return {"raw": shown, "raw_more": left_out, "raw_file": served_file(entry)[0]}


def served_file(entry: Entry) -> tuple[str, str]:
    """(site path, text) of the rule file, served next to its page as written (`.yml`: browsers
    show or download it, never run it), whether or not the folder has a `source_url`."""
    return rule_file_path(entry.slug), entry.document.source.raw_text


def _stage(number: int, title: str, body: str, all_fields: list[str]) -> dict:
    """A stage; its body past STAGE_BODY characters is cut (the rule body shows every value)."""
    shown, left_out = cut_text(body, STAGE_BODY) if number else (body, 0)
    return {"number": number, "title": title, "body": shown, "more": left_out, "condition": number == 0, "all_fields": all_fields}


def findings_banner(problems: list[dict]) -> list[dict]:
    """A banner at the top of the page when the rule has errors or warnings (a page with an error,
    e.g. a duplicate key, is still published): what is wrong, in short; the Problems section has all."""
    serious = [p for p in problems if p["severity"] in ("error", "warning")]
    if not serious:
        return []
    errors = sum(1 for p in serious if p["severity"] == "error")
    counts = ", ".join(f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((errors, "error"), (len(serious) - errors, "warning")) if n)
    return [{
        "kind": "errors" if errors else "warnings",
        "title": f"Findings: {counts}",
        "text": " ".join(f"{p['location']}: {p['message']} [{p['code']}]." for p in serious[:3])
        + (f" And {len(serious) - 3} more, listed under Problems." if len(serious) > 3 else ""),
    }]


def banners(entry: Entry) -> list[dict]:
    document = entry.document
    found = []
    status = (document.status or "").lower()
    if status == "deprecated":
        found.append({"kind": "deprecated", "title": "Deprecated", "text": "This rule is deprecated: it is kept for reference and should not be deployed."})
    elif status == "unsupported":
        found.append({"kind": "unsupported", "title": "Unsupported", "text": "This rule uses features that Sigma converters do not support; it cannot be deployed as it is."})
    placeholders = entry.analysis.placeholders if entry.analysis is not None else ()
    source = document.source
    in_placeholder_folder = "placeholder" in f"{source.root}/{source.path}".lower()
    if placeholders or in_placeholder_folder:
        names = ", ".join(placeholders[:5]) if placeholders else "placeholders"
        found.append({
            "kind": "placeholder",
            "title": "Placeholder rule",
            "text": f"Values such as {names} are placeholders that each deployment must fill in with its own values.",
        })
    if entry.analysis is not None and entry.analysis.aggregations:
        found.append({"kind": "legacy", "title": "Legacy aggregation", "text": "The condition ends in a legacy aggregation (| count() ...); Sigma 2 expresses this as a correlation rule."})
    return found


def attack_context(entry: Entry) -> dict | None:
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
            if mapped.also_tags:
                notes.append("tagged as " + " and ".join((mapped.tag, *mapped.also_tags)))
            if mapped.deprecated:
                notes.append(f"deprecated in {release}")
            techniques.append({
                "id": technique.id,
                "name": technique.name,
                "url": technique.url,
                "path": technique_path(technique.id),
                "notes": notes,
            })
        rows.append({"name": row.tactic.name, "id": row.tactic.id, "path": tactic_path(row.tactic.shortname), "techniques": techniques})
    return {
        "release": release,
        "rows": rows,
        "unknown": [{"id": technique_id, "path": technique_path(technique_id)} for technique_id in mapping.unknown_techniques],
        "groups": [{"id": g.id, "name": g.name, "url": g.url} for g in mapping.groups],
        "software": [{"id": s.id, "name": s.name, "url": s.url} for s in mapping.software],
        "other": list(mapping.other_tags),
    }


def exclusions(entry: Entry) -> list[dict]:
    analysis = entry.analysis
    assert analysis is not None
    groups = [_exclusion(exclusion, None) for exclusion in analysis.exclusions]
    groups += [_exclusion(exclusion, filter_entry) for filter_entry, exclusion in entry.exclusions_by_filter()]
    show_headers = len(groups) > 1 or any(
        group["scope"] != "filter" or group["combined"] or group["source"] or group["searches"][0]["and_groups"]
        for group in groups
    )
    for group in groups:
        group["header"] = show_headers
    return groups


def _exclusion(exclusion: Exclusion, source: Entry | None) -> dict:
    """One exclusion as table rows, grouped so that only what excludes on its own is a row.

    Each search (identifier) gives `rows` (single-field alternatives: each value excludes alone)
    and `and_groups` (alternatives of several fields, or `|all`: only together). A combined
    exclusion (`not all of X`, `not (a and b)`) has several searches that exclude only together.
    """
    searches = []
    for search in exclusion.searches:
        rows, and_groups, more = [], [], 0
        for alternative in search.alternatives:
            if len(alternative) == 1 and not alternative[0].match_all:
                item = alternative[0]
                room = max(0, TABLE_ROWS - len(rows))  # past it, the rows are counted, not shown
                rows.extend({"field": item.field_label, "kind": item.kind, "value": value, "field_reference": item.field_reference}
                            for value in item.values[:room])
                more += max(0, len(item.values) - room)
            else:
                and_groups.append([
                    {"field": item.field_label, "kind": item.kind, "values": list(item.values), "all": item.match_all,
                     "field_reference": item.field_reference}
                    for item in alternative
                ])
        searches.append({"identifier": search.identifier, "rows": rows, "more": more, "and_groups": and_groups})
    return {
        "label": (" and " if exclusion.combined else ", ").join(exclusion.identifiers),
        "scope": exclusion.scope,
        "scope_note": _SCOPE_NOTES.get(exclusion.scope, exclusion.scope),
        "combined": exclusion.combined,
        "source": {"title": source.document.title, "path": rule_path(source.slug)} if source is not None else None,
        "searches": searches,
    }


def indicators(data: SiteData, entry: Entry) -> list[dict]:
    analysis = entry.analysis
    assert analysis is not None
    corpus = data.catalog.corpus
    rows = []
    for indicator in analysis.indicators:
        count = corpus.count(indicator.key) if isinstance(entry.document, Rule) else 0
        rows.append({
            "field": indicator.field_label,
            "kind": indicator.kind,
            "value": indicator.value,
            "all": indicator.match_all,
            "field_reference": indicator.field_reference,
            "count": count,
            "path": indicator_path(indicator.key) if count > 1 else None,
        })
    # the most shared first; then by operator and field; values keep the order the rule writes them in
    rows.sort(key=lambda row: (-row["count"], row["kind"], row["field"].casefold(), row["field"]))
    return rows


def correlation(data: SiteData, entry: Entry, document: CorrelationRule) -> dict:
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
        "targets": targets(data, entry, document),
    }


def targets(data: SiteData, entry: Entry, document: CorrelationRule | FilterRule) -> list[dict]:
    """The rules a correlation or filter names, linked where the catalog has them."""
    lookup = {}
    for target in entry.targets:
        for reference in (target.document.id, target.document.name):
            if reference:
                lookup.setdefault(reference.strip().lower(), target)
    found = []
    for reference in document.rules:
        target = lookup.get(reference.strip().lower())
        found.append({"ref": reference, "row": data.rows[target.slug] if target is not None else None})
    return found


# --- the metadata table ---------------------------------------------------------------------------


def _text(value: str, path: str | None = None, href: str | None = None, code: bool = False) -> dict:
    """One item of the metadata table: text with an optional internal or external link."""
    return {"text": value, "path": path, "href": href, "code": code}


def details(data: SiteData, entry: Entry) -> list[dict]:
    """The metadata table: (label, items), each item text with an optional internal/external link."""
    document = entry.document
    rows: list[dict] = []

    def add(label: str, items: list[dict], listed: bool = False) -> None:
        if items:
            rows.append({"label": label, "items": items, "list": listed})

    add("ID", [_text(document.id, code=True)] if document.id else [_text("none (the address comes from the title)")])
    if document.name:
        add("Name", [_text(document.name, code=True)])
    add("Status", [_text(document.status, item_path("statuses", document.status))] if document.status else [])
    add("Level", [_text(document.level, item_path("levels", document.level))] if document.level else [])
    add("Author", [_text(name, author_path(name)) for name in split_authors(document.author)])
    add("Date", [_text(document.date)] if document.date else [])
    add("Modified", [_text(document.modified)] if document.modified else [])
    if isinstance(document, (Rule, FilterRule)):
        add("Log source", _logsource_items(document))
    add("References", [_text(ref, href=external_url(ref)) for ref in dict.fromkeys(document.references)], listed=True)
    add("False positives", [_text(item) for item in document.falsepositives], listed=True)
    unpaged = data.catalog.page_caps.tags
    add("Tags", [_text(tag, None if normal(tag) in unpaged else item_path("tags", tag)) for tag in document.tags])
    add("Related rules", _related_items(entry), listed=True)
    add("Related from", [_text(f"{relation}: {other.document.title}", rule_path(other.slug))
                         for relation, other in data.related_from.get(entry.slug, ())], listed=True)
    add("Correlations", [_text(other.document.title, rule_path(other.slug)) for other in entry.correlations], listed=True)
    add("Filters", [_text(other.document.title, rule_path(other.slug)) for other in entry.filters], listed=True)
    add("Fields", [_text(name, code=True) for name in document.fields])
    add("License", [_text(document.license)] if document.license else [])
    add("Source file", _source_items(data, entry))
    return rows


def _logsource_items(document: Rule | FilterRule) -> list[dict]:
    logsource = document.logsource
    items = []
    for label, value in (("product", logsource.product), ("category", logsource.category), ("service", logsource.service)):
        if value:
            items.append(_text(f"{label}: {value}"))
    if items:  # a link to each log source page the rule is listed on (several for a list log source)
        items.extend(_text(single.label, item_path("logsources", single.label)) for single in logsource.each)
    if logsource.definition:
        items.append(_text(f"definition: {logsource.definition}"))
    return items


def _related_items(entry: Entry) -> list[dict]:
    related = []
    for relation, target in entry.related:
        if target is not None:
            related.append(_text(f"{relation}: {target.document.title}", rule_path(target.slug)))
    linked_ids = {(target.document.id or "").lower() for _, target in entry.related if target is not None}
    for item in entry.document.related:
        if item.id.strip().lower() not in linked_ids:
            related.append(_text(f"{item.type}: {item.id} (not in this catalog)"))
    return related


def _source_items(data: SiteData, entry: Entry) -> list[dict]:
    """The file, its document number, links to view and edit it where the folder has a source URL."""
    source = entry.document.source
    items = [_text(data.display_file(source.root, source.path), code=True)]
    if source.documents_in_file > 1:
        items.append(_text(f"document {source.document + 1} of {source.documents_in_file}, line {source.line}"))
    folder = data.folders.get(source.root)
    view, edit = host_links(data, entry)
    if view is not None:
        items.append(_text("view source", href=view))
    if edit is not None:
        items.append(_text("edit", href=edit))
    if folder is not None and folder.name:
        items.append(_text(f"from {folder.name}"))
    return items
