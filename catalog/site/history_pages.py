"""A rule page's History and Test evidence sections (`templates/rule_history.html`), and the
Recently changed page (`templates/recent.html`).

`RuleRecords.prepare` does the build's git and evaluation work once: each rule's file history
(catalog.history), the analysis diff of its newest changes (catalog.revisions) and its evidence
evaluated against JSON samples (catalog.evidence, bounded per build).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote

from catalog import evidence as evidence_module
from catalog.history import FileHistory, RepositoryHistory, commit_url
from catalog.problems import Code
from catalog.revisions import PER_FILE, Revision, describe_revisions
from catalog.site.addresses import RECENT, external_url
from catalog.site.model import Site, SiteData, browse_page

log = logging.getLogger("mkdocs.plugins.sigma_catalog")

#: Commits shown unfolded on a rule page.
SHOWN = 10
#: New JSON evaluations per build at most (each converts the rule with pySigma and fills a database);
#: results are remembered in the build cache by rule text and sample content.
EVALUATIONS = 300


@dataclass(slots=True)
class RuleRecords:
    """What the History and Test evidence sections of one build need."""

    history: RepositoryHistory | None = None
    truncated: bool = False
    files: dict[str, FileHistory] = field(default_factory=dict)  # by slug
    revisions: dict[tuple[str, str], Revision] = field(default_factory=dict)
    evidence: dict[str, dict] = field(default_factory=dict)  # by slug: the section's data
    recent_commits: int = 50  # the Recently changed page: the newest commits...
    recent_days: int | None = None  # ...of the last days
    seconds: float = 0.0  # reading the history (for the build log)

    def prepare(self, data: SiteData, cache_dir: str | None) -> None:
        started = time.perf_counter()
        if self.history is not None:
            for entry in data.entries:
                found = self.history.of(os.path.join(entry.document.source.root, entry.document.source.path))
                if found is not None:
                    self.files[entry.slug] = found
            shown = [change for found in self.files.values() for change in found.changes[:PER_FILE]]
            self.revisions = describe_revisions(self.history, shown, cache_dir)
        self._prepare_evidence(data, cache_dir)
        log.info("sigma-catalog: rule history (%d documents, %d commits) and test evidence (%d rules) in %.2f s",
                 len(self.files), len(self.history.commits) if self.history else 0, len(self.evidence),
                 self.seconds + time.perf_counter() - started)

    def _prepare_evidence(self, data: SiteData, cache_dir: str | None) -> None:
        # (pySigma's import is a tenth of a second: only for a catalog that has test evidence)
        available = bool(data.catalog.evidence) and evidence_module.evaluator_available()
        evaluations = evidence_module.Evaluations(cache_dir, EVALUATIONS) if available else None
        for slug, found in data.catalog.evidence.items():  # (what cannot be read is listed under Problems)
            self.evidence[slug] = _evidence_context(data, data.by_slug[slug], found, evaluations)
        if evaluations is not None:
            evaluations.save()
        if self.evidence and not available:
            log.info("sigma-catalog: pysigma-backend-sqlite is not installed: test evidence is shown without evaluating the JSON samples")


def _evidence_context(data: SiteData, entry, found: "evidence_module.Evidence", evaluations: "evidence_module.Evaluations | None") -> dict:
    folder = data.folders.get(entry.document.source.root)
    samples = []
    for sample in found.samples:
        row = {"name": sample.name, "type": sample.type, "provider": sample.provider, "expected": sample.match_count,
               "path": sample.path, "href": _repository_file_url(folder, entry.document.source.root, found, sample.path) if sample.exists else None,
               "exists": sample.exists, "result": None, "error": None}
        if evaluations is not None and sample.json_path:
            try:
                result = evaluations.result(entry.document.source.raw_text, found.file(sample.json_path), sample.match_count)
                if result is not None:
                    row["result"] = {"matched": result.matched, "events": result.events, "ok": result.matched == sample.match_count}
            except (ValueError, OSError) as error:
                row["error"] = str(error)
        samples.append(row)
    return {"info_path": found.info_path, "samples": samples,
            "simulations": [{"type": s.type, "name": s.name, "technique": s.technique, "guid": s.atomic_guid} for s in entry.document.simulation]}


def _repository_file_url(folder, root: str, found, relative: str) -> str | None:
    """A sample's page on the host: the folder's source URL names the rule folder; go up to the repository's top."""
    if folder is None or not folder.source_url:
        return None
    try:
        depth = len(os.path.relpath(os.path.realpath(root), found.base).split(os.sep)) if os.path.realpath(root) != found.base else 0
    except ValueError:
        return None
    base = folder.source_url.rstrip("/")
    for _ in range(depth):
        base = base.rsplit("/", 1)[0]
    return external_url(f"{base}/{quote(relative, safe='/')}")


def history_context(data: SiteData, records: RuleRecords, entry) -> dict | None:
    """The History section of one rule page; None when there is no history for it."""
    found = records.files.get(entry.slug)
    if found is None:
        return None
    folder = data.folders.get(entry.document.source.root)
    commits = [_change_row(change, folder.source_url if folder else None, records.revisions) for change in found.changes]
    created, last = found.created, found.last_changed
    document = entry.document
    return {
        "created": created.commit.date if created else None,
        "last_changed": last.commit.date if last else None,
        "date": str(document.date) if document.date else None,
        "modified": str(document.modified) if document.modified else None,
        # the core's finding decides (catalog.revisions.date_findings), so the page, check and Problems agree
        "disagrees": any(p.code == Code.MODIFIED_NOT_BUMPED for p in data.problems_by_file.get(document.source.file_display, ())),
        "commits": commits[:SHOWN],
        "folded": commits[SHOWN:],
        "truncated": records.truncated,
    }


def _change_row(change, source_url: str | None, revisions: dict) -> dict:
    revision = revisions.get((change.old_blob, change.new_blob)) if change.old_blob and change.new_blob else None
    what = {"A": "created", "R": "renamed from " + (change.old_path or ""), "S": "history truncated here"}.get(change.status, "")
    flags = []
    if revision is not None:
        flags = [label for label, present in (("detection", revision.detection), ("status", revision.status), ("level", revision.level)) if present]
    return {
        "date": change.commit.date, "subject": change.commit.subject, "short": change.commit.short,
        "href": commit_url(source_url, change.commit.id), "what": what, "flags": flags,
        "summary": revision.summary if revision is not None and revision.meaningful else "",
    }


def add_recent_page(data: SiteData, records: RuleRecords, site: Site) -> None:
    """Recently changed: the rules changed by the newest commits (within the last days, when set)."""
    history, commits, days = records.history, records.recent_commits, records.recent_days
    if history is None or not history.commits:
        return
    newest = history.commits[0].time
    recent = {c.id for c in history.commits[:commits] if days is None or c.time >= newest - days * 86400}
    rows = []
    for slug, found in records.files.items():
        entry = data.by_slug[slug]
        folder = data.folders.get(entry.document.source.root)
        for change in found.changes:
            if change.commit.id in recent:
                rows.append(dict(_change_row(change, folder.source_url if folder else None, records.revisions), rule=data.rows[slug], time=change.commit.time))
    rows.sort(key=lambda row: (-row["time"], row["rule"]["title"].casefold()))
    since = datetime.fromtimestamp(min((c.time for c in history.commits if c.id in recent), default=newest), timezone.utc).strftime("%Y-%m-%d")
    site.browse.append(browse_page(RECENT, "Recently changed", "recent.html", {
        "rows": rows, "commits": len(recent), "since": since, "truncated": records.truncated,
        "days": days,
    }, nav_title="Recently changed"))
