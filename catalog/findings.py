"""The findings that need the whole catalog and more than the rules themselves: what git's history
contradicts (catalog.revisions) and likely duplicates (catalog.similarity).

Every command adds them the same way, right after `build_catalog`, so `catalog analyze`, `catalog
check` and the site's Problems page report one set of findings.
"""

from __future__ import annotations

import os

from catalog.history import RepositoryHistory
from catalog.pipeline import Catalog
from catalog.revisions import add_history_findings
from catalog.similarity import Similarity, duplicate_findings


def add_catalog_findings(catalog: Catalog, history: RepositoryHistory | None, cache_dir: str | os.PathLike | None = None,
                         previous: Similarity | None = None) -> Similarity:
    """Adds the catalog-wide findings to `catalog.problems`; returns the similarity index it made
    (with `previous`, the last build's under mkdocs serve, reusing what an edit left as it was)."""
    add_history_findings(catalog, history, cache_dir)
    similarity = Similarity(catalog, previous)
    catalog.problems.extend(duplicate_findings(catalog, similarity))
    return similarity
