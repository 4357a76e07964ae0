"""Similar rules (catalog.similarity) on the site: each rule page's "Similar rules" and the Overlap
page of likely-duplicate clusters."""

from __future__ import annotations

from catalog.analysis import field_label
from catalog.pipeline import Entry
from catalog.similarity import LIKELY_DUPLICATE, Similar
from catalog.site.model import Site, SiteData, browse_page

#: Shared indicators shown per similar rule (the rest are counted).
SHOWN_SHARED = 8


def similar_context(data: SiteData, entry: Entry) -> list[dict]:
    return [_similar_row(data, similar) for similar in data.similarity.of(entry.slug)]


def _similar_row(data: SiteData, similar: Similar) -> dict:
    shared = [f"{field_label(key[0] or None)} {key[1]} {key[2]}" for key in similar.shared]
    return {
        "rule": data.rows[similar.slug],
        "score": f"{similar.score:.2f}",
        "same_logsource": similar.same_logsource,
        "duplicate": similar.likely_duplicate,
        "shared": shared[:SHOWN_SHARED],
        "more": max(len(shared) - SHOWN_SHARED, 0),
    }


def similar_dependencies(data: SiteData, entry: Entry) -> tuple:
    """What a rule page's Similar rules section is made of (for the serve memo)."""
    return tuple((s.slug, s.score, s.same_logsource, data.by_slug[s.slug].document.title) for s in data.similarity.of(entry.slug))


def add_overlap_page(data: SiteData, site: Site) -> None:
    clusters = []
    found = data.similarity.clusters()
    for cluster in found:
        clusters.append({
            "pairs": [{"first": data.lists.row(first), "second": data.lists.row(second), "score": f"{score:.2f}"}
                      for first, second, score in cluster.pairs],
            "more": len(cluster.slugs) - 2,  # rules beyond the best pair, which names the group
        })
    context = {"clusters": clusters, "rules": sum(len(cluster.slugs) for cluster in found),
               "threshold": f"{LIKELY_DUPLICATE:.2f}"}
    site.browse.append(browse_page("overlap/", "Overlap", "overlap.html", context))
    site.home["duplicate_clusters"] = len(clusters)
