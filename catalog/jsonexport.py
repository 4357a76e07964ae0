"""The machine-readable form of a catalog (schema: docs/json-schema.md)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from catalog.analysis import Exclusion, RuleAnalysis
from catalog.model import CorrelationRule, FilterRule, Rule, SigmaDocument
from catalog.pipeline import Catalog, Entry
from catalog.problems import severity_counts

if TYPE_CHECKING:
    from catalog.attack import AttackMapping

SCHEMA_VERSION = 1


def catalog_to_json(catalog: Catalog) -> dict:
    data = catalog_sections(catalog)
    data["rules"] = [entry_to_json(entry, catalog) for entry in catalog.entries]
    return data


def catalog_sections(catalog: Catalog) -> dict:
    """`catalog_to_json` but for its "rules" (None, in its place): for writers that make each
    document's record (`entry_to_json`) one at a time, so the whole is never in memory at once."""
    return {
        "schema_version": SCHEMA_VERSION,
        "attack_release": catalog.attack_release,
        "summary": {
            "files": len(catalog.files),
            "documents": len(catalog.entries),
            "rules": sum(1 for entry in catalog.entries if entry.document.kind == "rule"),
            "correlations": sum(1 for entry in catalog.entries if entry.document.kind == "correlation"),
            "filters": sum(1 for entry in catalog.entries if entry.document.kind == "filter"),
            **severity_counts(catalog.problems),
        },
        "files": files_to_json(catalog),
        "rules": None,
        "shared_indicators": [
            {"field": key[0] or None, "kind": key[1], "value": key[2], "rules": slugs}
            for key, slugs in catalog.corpus.shared()
        ],
        "problems": [problem.to_json() for problem in catalog.problems],
    }


def files_to_json(catalog: Catalog) -> list[dict]:
    """Every file read, in catalog order: the slugs of the documents it gave and its problem count,
    so that each file is accounted for (a file with no document has at least one problem)."""
    slugs: dict[str, list[str]] = {}
    for entry in catalog.entries:
        slugs.setdefault(entry.document.source.file_display, []).append(entry.slug)
    problems = Counter(problem.path for problem in catalog.problems)
    return [
        {"path": rule_file.display, "documents": slugs.get(rule_file.display, []), "problems": problems.get(rule_file.display, 0)}
        for rule_file in catalog.files
    ]


def entry_to_json(entry: Entry, catalog: Catalog) -> dict:
    document = entry.document
    data = {
        "slug": entry.slug,
        "kind": document.kind,
        **_metadata(document),
        "source": {
            "root": document.source.root,
            "path": document.source.path,
            "document": document.source.document,
            "line": document.source.line,
        },
    }
    if isinstance(document, (Rule, FilterRule)):
        ls = document.logsource
        data["logsource"] = {
            "product": ls.product,
            "category": ls.category,
            "service": ls.service,
            "each": [{"product": one.product, "category": one.category, "service": one.service} for one in ls.listed],
        }
    if isinstance(document, (CorrelationRule, FilterRule)):
        data["targets"] = [target.slug for target in entry.targets]
        data["rule_references"] = list(document.rules)
    if isinstance(document, FilterRule):
        data["any_rule"] = document.any_rule
    if isinstance(document, CorrelationRule):
        data["correlation"] = {
            "type": document.type,
            "group_by": list(document.group_by),
            "timespan": document.timespan,
            "condition": document.condition.text if document.condition else None,
        }
    if entry.analysis is not None:
        data["analysis"] = _analysis(entry.analysis, catalog)
    if isinstance(document, Rule):
        data["correlations"] = [other.slug for other in entry.correlations]
        data["filters"] = [other.slug for other in entry.filters]
    if entry.attack is not None:
        data["attack"] = _attack(entry.attack)
    return data


def _attack(mapping: "AttackMapping") -> dict:
    return {
        "tactics": [
            {
                "id": row.tactic.id,
                "name": row.tactic.name,
                "techniques": [
                    {
                        "id": mapped.technique.id,
                        "name": mapped.technique.name,
                        "tag": mapped.tag,
                        "derived": mapped.derived,
                        "replaced": mapped.replaced,
                        "deprecated": mapped.deprecated,
                        "also_tags": list(mapped.also_tags),
                    }
                    for mapped in row.techniques
                ],
            }
            for row in mapping.rows
        ],
        "groups": [group.id for group in mapping.groups],
        "software": [software.id for software in mapping.software],
        "unknown": list(mapping.unknown_techniques),
    }


def _metadata(document: SigmaDocument) -> dict:
    return {
        "id": document.id,
        "name": document.name,
        "title": document.title,
        "status": document.status,
        "level": document.level,
        "description": document.description,
        "author": document.author,
        "date": document.date,
        "modified": document.modified,
        "references": list(document.references),
        "tags": list(document.tags),
        "falsepositives": list(document.falsepositives),
        "related": [{"id": related.id, "type": related.type} for related in document.related],
        "dialect": document.dialect,
        "regression_tests_path": document.regression_tests_path,
        "simulation": [
            {"type": test.type, "name": test.name, "technique": test.technique, "atomic_guid": test.atomic_guid} for test in document.simulation
        ],
    }


def _analysis(analysis: RuleAnalysis, catalog: Catalog) -> dict:
    return {
        "stages": [
            {
                "number": stage.number,
                "title": stage.title,
                "identifier": stage.identifier.name if stage.identifier else None,
                "negated": stage.negated,
                "body": stage.body,
            }
            for stage in analysis.stages
        ],
        "exclusions": [_exclusion(exclusion) for exclusion in analysis.exclusions],
        "indicators": [
            {
                "field": indicator.field,
                "kind": indicator.kind,
                "value": indicator.value,
                "identifier": indicator.identifier,
                "all": indicator.match_all,
                "field_reference": indicator.field_reference,
                "corpus_count": catalog.corpus.count(indicator.key),
            }
            for indicator in analysis.indicators
        ],
        "aggregations": list(analysis.aggregations),
        "placeholders": list(analysis.placeholders),
    }


def _exclusion(exclusion: Exclusion) -> dict:
    return {
        "identifiers": list(exclusion.identifiers),
        "scope": exclusion.scope,
        "combined": exclusion.combined,
        "source": exclusion.source,
        "searches": [
            {
                "identifier": search.identifier,
                "alternatives": [
                    [
                        {"field": item.field, "kind": item.kind, "values": list(item.values), "all": item.match_all, "field_reference": item.field_reference}
                        for item in alternative
                    ]
                    for alternative in search.alternatives
                ],
            }
            for search in exclusion.searches
        ],
    }
