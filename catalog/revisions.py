"""What each commit did to a rule, by the Changes page's analysis diff, and where git disagrees with `modified`.

`describe_revisions` compares the two versions of a file around a commit (read from git's object
store with one `cat-file --batch`) with `catalog.diff.compare_entries`: detection, status and level
changes, not a text diff. The work is bounded (the newest `PER_FILE` changes of each file, at most
`BUDGET` new comparisons a build, newest first) and remembered by blob pair in the build cache.

`date_findings` is the one place that decides the `modified-not-bumped` warning: a rule whose last
change in git is dated after its `modified` (or `date`) field, by a commit that did not touch that
field and changed what the rule does. `catalog check`, `catalog analyze` and the site all add it
to the catalog's problems through `add_history_findings`, right after `build_catalog`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from catalog.corpus import CorpusIndex
from catalog.diff import compare_entries
from catalog.git import GitError, read_blobs
from catalog.history import FileChange, RepositoryHistory
from catalog.loader import load_text
from catalog.model import Rule, FilterRule
from catalog.problems import Code, Problem, Severity

#: The newest changes of each file that get an analysis diff (the page folds after 10).
PER_FILE = 10
#: New comparisons per build at most (each parses and analyses two versions); the rest come in later builds.
BUDGET = 1000
_CACHE_LIMIT = 100_000
_FIELD = {name: re.compile(rf"^{name}:[ \t]*(.*)$", re.MULTILINE) for name in ("modified", "date")}


@dataclass(frozen=True, slots=True)
class Revision:
    """What one commit changed in a rule file, by analysis."""

    detection: bool  # indicators, exclusions, condition or log source
    status: tuple[str | None, str | None] | None
    level: tuple[str | None, str | None] | None
    modified_bumped: bool
    summary: str  # the Changes page's one-line summary; "" for formatting only

    @property
    def meaningful(self) -> bool:
        return bool(self.detection or self.status or self.level)


def describe_revisions(history: RepositoryHistory, changes: Iterable[FileChange], cache_dir: str | os.PathLike | None,
                       budget: int = BUDGET) -> dict[tuple[str, str], Revision]:
    """The analysis diff of each change (keyed by its (old blob, new blob)), from the cache where known."""
    cache_file = Path(cache_dir) / "history" / "revisions.json" if cache_dir is not None else None
    known = _read_cache(cache_file)
    wanted = sorted({(c.old_blob, c.new_blob, c.commit.time) for c in changes if c.old_blob and c.new_blob and c.content_changed},
                    key=lambda item: -item[2])
    missing = [(old, new) for old, new, _ in wanted if (old, new) not in known][:budget]
    if missing:
        try:
            blobs = read_blobs(history.root, [sha for pair in missing for sha in pair])
        except GitError:
            blobs = {}
        for old, new in missing:
            if old in blobs and new in blobs:
                known[(old, new)] = compare_texts(blobs[old].decode("utf-8", "replace"), blobs[new].decode("utf-8", "replace"))
        _write_cache(cache_file, known)
    return {(old, new): known[(old, new)] for old, new, _ in wanted if (old, new) in known}


def compare_texts(old_text: str, new_text: str) -> Revision:
    """The analysis diff of two versions of one rule file (documents paired by position)."""
    from catalog.pipeline import Entry, _analysis

    def entries(text: str) -> list[Entry]:
        documents, _ = load_text(text, "", "rule.yml")
        found = []
        for document in documents:
            entry = Entry(document, "x")
            if isinstance(document, (Rule, FilterRule)):
                entry.analysis = _analysis(document.detection)
            found.append(entry)
        return found

    detection, status, level, bumped, summaries = False, None, None, _field(old_text, "modified") != _field(new_text, "modified"), []
    for old, new in zip(entries(old_text), entries(new_text)):
        change = compare_entries(old, new, "", "", CorpusIndex(), with_text_diff=False)
        if change is None:
            continue
        detection = detection or bool(change.logic_changed or change.indicators_added or change.indicators_removed
                                      or change.exclusions_added or change.exclusions_removed)
        status = status or change.status_change
        level = level or change.level_change
        summaries.append(change.summary())
    return Revision(detection, status, level, bumped, "; ".join(summaries))


def _field(text: str, name: str) -> str | None:
    match = _FIELD[name].search(text)
    return match.group(1).strip().strip("'\"") if match else None


def add_history_findings(catalog, history: RepositoryHistory | None, cache_dir: str | os.PathLike | None = None) -> None:
    """Add to the catalog's problems what the rules' git history contradicts (nothing without history)."""
    if history is not None:
        catalog.problems.extend(date_findings([entry for entry in catalog.entries if isinstance(entry.document, Rule)], history, cache_dir))


def date_findings(entries: Iterable, history: RepositoryHistory, cache_dir: str | os.PathLike | None = None) -> list[Problem]:
    """A warning for each rule whose last change in git came after its `modified` date without bumping it."""
    candidates = []
    for entry in entries:
        document = entry.document
        stated = document.modified or document.date
        file_history = history.of(os.path.join(document.source.root, document.source.path))
        last = file_history.last_changed if file_history is not None else None
        if not stated or last is None or last.old_blob is None or last.commit.date <= str(stated)[:10]:
            continue
        candidates.append((entry, last))
    revisions = describe_revisions(history, [last for _, last in candidates], cache_dir, budget=len(candidates))
    found = []
    for entry, last in candidates:
        revision = revisions.get((last.old_blob, last.new_blob))
        if revision is None or revision.modified_bumped or not revision.meaningful:
            continue
        document = entry.document
        field_name = "modified" if document.modified else "date"
        line = _field_line(document.source.raw_text, field_name)
        found.append(Problem(
            document.source.file_display, document.source.line + line - 1 if line else document.source.line, 1 if line else 1,
            Severity.WARNING, Code.MODIFIED_NOT_BUMPED,
            f"git changed this rule on {last.commit.date} ({last.commit.short} '{last.commit.subject[:80]}': {revision.summary}) "
            f"after its {field_name} date {str(getattr(document, field_name))[:10]}; set modified: {last.commit.date}",
        ))
    return found


def _field_line(text: str, name: str) -> int:
    """The 1-based line of a top-level field in a document's text; 0 when absent."""
    match = _FIELD[name].search(text)
    return text.count("\n", 0, match.start()) + 1 if match else 0


def _read_cache(cache_file: Path | None) -> dict[tuple[str, str], Revision]:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
        return {(old, new): Revision(detection, tuple(status) if status else None, tuple(level) if level else None, bumped, summary)
                for old, new, detection, status, level, bumped, summary in data}
    except (OSError, ValueError, TypeError):
        return {}


def _write_cache(cache_file: Path | None, known: dict[tuple[str, str], Revision]) -> None:
    if cache_file is None:
        return
    items = list(known.items())[-_CACHE_LIMIT:]
    data = [[old, new, r.detection, r.status, r.level, r.modified_bumped, r.summary] for (old, new), r in items]
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        os.replace(temporary, cache_file)
    except OSError:
        pass
