"""Downloads published with the site: catalog.json, a rules x techniques CSV, ATT&CK Navigator layers.

All of them are plain data derived from the `Catalog`; `catalog.json` is `catalog_to_json` (schema
in docs/json-schema.md) with file locations shown as configured and each document's page address.
"""

from __future__ import annotations

import csv
import filecmp
import functools
import io
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Sequence

from catalog.analysis import value_text
from catalog.jsonexport import catalog_sections, entry_to_json
from catalog.model import FilterRule, Rule
from catalog.pipeline import Catalog, Entry
from catalog.site.addresses import (
    CATALOG_JSON,
    NAVIGATOR,
    SEARCH_INDEX,
    TECHNIQUES_CSV,
    external_url,
    key_slug,
    page_href,
    rule_path,
    technique_path,
)
from catalog.site.render import html_safe_json
from catalog.site.search import search_index

if TYPE_CHECKING:
    from catalog.attack import AttackKnowledge

NAVIGATOR_VERSION = "5.1.0"
LAYER_FORMAT = "4.5"


@dataclass(frozen=True, slots=True)
class ExportFile:
    path: str  # site-relative, e.g. "exports/catalog.json"
    data: bytes
    label: str = ""
    techniques: int = 0
    source: Path | None = None  # written to this file already (streamed), `data` then empty


def write_catalog_json(out: BinaryIO, catalog: Catalog, display_file: Callable[[str, str], str],
                       display_problem: Callable[[str], str], directory_urls: bool = True, memo: dict | None = None,
                       key_of: Callable[[Entry], object] | None = None) -> None:
    """`catalog_to_json` written as a stream: one document's record at a time (never the whole
    catalog as one structure), with rule folders shown as configured (never the build machine's
    paths) and each document's page address. The bytes are `html_safe_json` of the whole.

    With `memo` (mkdocs serve), each document's serialised record is kept between rebuilds under
    `key_of(entry)`, and only records whose key changed are serialised again; the bytes are the
    same (tests/test_site.py checks it against a plain build).
    """
    data = catalog_sections(catalog)
    for problem in data["problems"]:
        problem["path"] = display_problem(problem["path"])
    for file in data.get("files", ()):
        file["path"] = display_problem(file["path"])
    out.write(b"{")
    for number, (name, value) in enumerate(data.items()):
        out.write((b"," if number else b"") + html_safe_json(name) + b":")
        if name != "rules":
            out.write(html_safe_json(value))
            continue
        out.write(b"[")
        for index, entry in enumerate(catalog.entries):
            out.write((b"," if index else b"") + _record(entry, catalog, display_file, directory_urls, memo, key_of))
        out.write(b"]")
    out.write(b"}")
    if memo is not None:
        current = {entry.slug for entry in catalog.entries}
        for slug in [slug for slug in memo if slug not in current]:
            del memo[slug]


def _record(entry: Entry, catalog: Catalog, display_file: Callable[[str, str], str], directory_urls: bool,
            memo: dict | None, key_of: Callable[[Entry], object] | None) -> bytes:
    """One document's record of catalog.json, serialised (from `memo` when its key is unchanged)."""
    key = key_of(entry) if memo is not None and key_of is not None else None
    cached = memo.get(entry.slug) if memo is not None else None
    if cached is None or cached[0] != key or key is None:
        rule = entry_to_json(entry, catalog)
        _localise(rule, entry, display_file, directory_urls)
        cached = (key, html_safe_json(rule))
        if memo is not None and key is not None:
            memo[entry.slug] = cached
    return cached[1]


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


#: What a file written here is made with: as `open()` would (temporary files are private, 0600,
#: and a web server running as another user could not read a published page).
FILE_MODE = _file_mode()


def write_if_different(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Stream a file through `write`; an unchanged file is left as it was (its mtime too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=".tmp-", delete=False) as out:
        write(out.file)  # the true file: the wrapper passes each of thousands of writes on in Python
    if path.is_file() and filecmp.cmp(out.name, path, shallow=False):
        os.unlink(out.name)
    else:
        os.chmod(out.name, FILE_MODE)
        os.replace(out.name, path)


def _localise(rule: dict, entry: Entry, display_file: Callable[[str, str], str], directory_urls: bool) -> None:
    source = rule["source"]
    source["file"] = display_file(entry.document.source.root, entry.document.source.path)
    source["root"] = display_file(entry.document.source.root, "").rstrip("/")
    rule["page"] = page_href(rule_path(entry.slug), directory_urls)


# --- CSV ------------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "slug", "id", "title", "kind", "level", "status", "product", "category", "service",
    "tactic_id", "tactic", "technique_id", "technique", "derived", "replaced", "deprecated", "tag", "page",
    "also_tags",
]


#: First characters that make a spreadsheet read a cell as a formula, or skip to one (leading
#: whitespace, the fullwidth equals sign, DDE's | and the ; of some locales' separators).
_FORMULA_START = frozenset("=+-@\t\r\n \uff1d|;")


def _cell(value: object) -> str:
    """Text for a spreadsheet cell; one that could start a formula is quoted away with a leading '."""
    if value is None:
        return ""
    text = value_text(value)
    return "'" + text if text[:1] in _FORMULA_START else text


def techniques_csv(catalog: Catalog, directory_urls: bool = True) -> bytes:
    """One row per (document, tactic, technique); unknown technique ids get a row without a tactic."""
    out = io.StringIO()
    # RFC 4180's CRLF: then the writer also quotes cells holding a lone CR (with "\n" it did not)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in catalog.entries:
        mapping = entry.attack
        if mapping is None:
            continue
        document = entry.document
        logsource = document.logsource if isinstance(document, (Rule, FilterRule)) else None
        base = [
            entry.slug, document.id, document.title, document.kind, document.level, document.status,
            logsource.product if logsource else None, logsource.category if logsource else None,
            logsource.service if logsource else None,
        ]
        page = page_href(rule_path(entry.slug), directory_urls)
        for row in mapping.rows:
            for mapped in row.techniques:
                writer.writerow([_cell(v) for v in base + [
                    row.tactic.id, row.tactic.name, mapped.technique.id, mapped.technique.name,
                    mapped.derived, mapped.replaced, mapped.deprecated, mapped.tag, page, " ".join(mapped.also_tags),
                ]])
        for technique_id in mapping.unknown_techniques:
            writer.writerow([_cell(v) for v in base + [None, None, technique_id, None, False, None, False,
                                                       f"attack.{technique_id.lower()}", page, None]])
    return out.getvalue().encode("utf-8")


# --- ATT&CK Navigator -----------------------------------------------------------------------------


def navigator_layer(name: str, description: str, entries: Sequence[Entry], kb: "AttackKnowledge | None",
                    release: str | None, site_url: str | None = None, directory_urls: bool = True) -> dict:
    """A layer (format 4.5) scoring each (technique, tactic) by how many of `entries` map to it:
    rules, not titles (two rules may share one), as the technique's page and the CSV count them."""
    rules: dict[tuple[str, str], list[str]] = defaultdict(list)
    for entry in entries:
        if entry.attack is None:
            continue
        for row in entry.attack.rows:
            for mapped in row.techniques:  # a technique once per tactic row, whatever tags led to it
                tags = f" ({' and '.join((mapped.tag, *mapped.also_tags))})" if mapped.also_tags else ""
                rules[(mapped.technique.id, row.tactic.shortname)].append(entry.document.title + tags)
    techniques = [_layer_technique(technique_id, tactic, titles, kb, site_url, directory_urls)
                  for (technique_id, tactic), titles in sorted(rules.items())]
    maximum = max((t["score"] for t in techniques), default=1)
    major = (release or "").split(".")[0]
    versions = {"navigator": NAVIGATOR_VERSION, "layer": LAYER_FORMAT}
    if major.isdigit():
        versions = {"attack": major, **versions}
    return {
        "name": name,
        "versions": versions,
        "domain": "enterprise-attack",
        "description": description,
        "sorting": 3,
        "layout": {"layout": "side", "showID": True, "showName": True, "showAggregateScores": True,
                   "countUnscored": False, "aggregateFunction": "max", "expandedSubtechniques": "annotated"},
        "hideDisabled": False,
        "techniques": techniques,
        "gradient": {"colors": ["#e8f1fb", "#6baed6", "#08519c"], "minValue": 0, "maxValue": max(maximum, 1)},
        "legendItems": [],
        "showTacticRowBackground": False,
        "selectTechniquesAcrossTactics": True,
        "selectSubtechniquesWithParent": False,
        "selectVisibleTechniques": False,
        "metadata": [
            {"name": "generated by", "value": "sigma-catalog"},
            {"name": "rules", "value": str(len(entries))},
        ],
    }


def _layer_technique(technique_id: str, tactic: str, titles: list[str], kb: "AttackKnowledge | None", site_url: str | None,
                     directory_urls: bool) -> dict:
    """One (technique, tactic) of a layer: its score, the rule titles, links to ATT&CK and our page."""
    comment = f"{len(titles)} rule{'s' if len(titles) != 1 else ''}: " + "; ".join(titles)
    item: dict = {
        "techniqueID": technique_id,
        "tactic": tactic,
        "score": len(titles),
        "comment": comment if len(comment) <= 1000 else comment[:999] + "…",
        "enabled": True,
        "showSubtechniques": False,
    }
    links = []
    if kb is not None:
        technique = kb.technique(technique_id)
        url = external_url(technique.url) if technique is not None else None
        if url:
            links.append({"label": f"{technique_id} on attack.mitre.org", "url": url})
    if site_url and external_url(site_url):
        links.append({
            "label": "Rules in the catalog",
            "url": site_url.rstrip("/") + "/" + page_href(technique_path(technique_id), directory_urls),
        })
    if links:
        item["links"] = links
    return item


def navigator_layers(catalog: Catalog, kb: "AttackKnowledge | None", site_name: str, site_url: str | None = None,
                     directory_urls: bool = True, reuse: Callable | None = None) -> list[ExportFile]:
    """The whole catalog's layer, then one per log-source product (most rules first). `reuse`:
    `SiteData.reuse` (mkdocs serve), so that a layer no edited rule is in is the last build's."""
    release = catalog.attack_release
    inputs = (site_name, site_url, directory_urls, release)
    products: dict[str, list[Entry]] = defaultdict(list)
    for entry in catalog.entries:
        if product := _product(entry):
            products[product].append(entry)
    layers = [("all rules", f"{site_name}: all rules", "Rule count per technique and tactic.", NAVIGATOR + "all-rules.json",
               catalog.entries, None)]
    for product, entries in sorted(products.items(), key=lambda item: (-len(item[1]), item[0])):
        layers.append((product, f"{site_name}: {product}", f"Rule count per technique and tactic, log source product {product}.",
                       NAVIGATOR + f"product-{key_slug(product)}.json", entries, product))
    made = []
    for label, name, description, path, entries, product in layers:
        make = functools.partial(_layer_file, name, description, path, label, product, entries, kb, release, site_url, directory_urls)
        # kept by file path, unique per layer (a product may well be named "all rules")
        layer = reuse(path, inputs, functools.partial(_layer_part, product), make) if reuse is not None else make()
        if layer is not None:
            made.append(layer)
    return made


def _layer_file(name: str, description: str, path: str, label: str, product: str | None, entries: Sequence[Entry],
                kb: "AttackKnowledge | None", release: str | None, site_url: str | None, directory_urls: bool) -> ExportFile | None:
    """A layer's file: a product's only where its rules map to ATT&CK (`product` None: the whole catalog's, always)."""
    layer = navigator_layer(name, description, entries, kb, release, site_url, directory_urls)
    return ExportFile(path, _json(layer), label, len(layer["techniques"])) if layer["techniques"] or product is None else None


def _layer_part(product: str | None, entry: Entry) -> tuple | None:
    """What the layer of `product` (None: all rules) reads of a rule: whether it is in it, its
    title and its tags (its ATT&CK mapping)."""
    return (entry.document.title, entry.document.tags) if product is None or _product(entry) == product else None


def _product(entry: Entry) -> str:
    document = entry.document
    return document.logsource.product.strip().lower() if isinstance(document, (Rule, FilterRule)) and document.logsource.product else ""


def _json(data: object) -> bytes:
    return html_safe_json(data)  # compact (orjson's: see html_safe_json)


def data_files(catalog: Catalog, folder: Path, *, directory_urls: bool, display_file: Callable[[str, str], str],
               display_problem: Callable[[str], str], memo: dict | None = None,
               key_of: Callable[[Entry], object] | None = None) -> list[ExportFile]:
    """catalog.json (streamed into `folder`), the rules x techniques CSV and the search index (the
    layers come from `navigator_layers`)."""
    json_file = folder / CATALOG_JSON
    write_if_different(json_file, lambda out: write_catalog_json(out, catalog, display_file, display_problem, directory_urls,
                                                                 memo, key_of))
    return [
        ExportFile(CATALOG_JSON, b"", "catalog.json", source=json_file),
        ExportFile(TECHNIQUES_CSV, techniques_csv(catalog, directory_urls), "rules-techniques.csv"),
        ExportFile(SEARCH_INDEX, search_index(catalog, directory_urls), "search index"),
    ]
