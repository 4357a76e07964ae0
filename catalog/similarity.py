"""Similar rules: for every detection rule, the rules whose indicator sets overlap most with its own.

The measure is a weighted Jaccard index over indicator keys (and the values the rule's exclusions
suppress, as keys of their own): the weight of the indicators both rules
have, over the weight of the indicators either has. An indicator's weight is IDF-like,
`log(1 + rules / rules using it)`, so a rare shared value (a DLL name) counts far more than a
common one (`EventID 1`). A score of 1 means the same indicators: the same logic, perhaps on another
log source, or a copied rule with a new id.

Computed in one pass over the corpus index, never over all pairs: a rule's candidates are the rules
sharing one of its `PROPOSING_KEYS` rarest indicators, among those at most `CANDIDATE_LIMIT` rules
use (common indicators still count in the score, they only do not propose candidates), and only the
`SCORED_CANDIDATES` best of those by rare shared weight get the exact score. The cost per rule is bounded, so the whole step
grows linearly with the catalog.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Iterable

from catalog.analysis import IndicatorKey
from catalog.corpus import CorpusIndex
from catalog.model import Rule
from catalog.pipeline import Catalog, Entry
from catalog.problems import Code, Problem, Severity

#: A pair scoring at least this, sharing at least DUPLICATE_MIN_SHARED keys, is a "likely duplicate".
LIKELY_DUPLICATE = 0.9
DUPLICATE_MIN_SHARED = 2
#: Marks the field of an excluded value's key: two rules looking for the same values but excluding
#: different ones are different logic (the corpus index holds only what rules look for).
EXCLUDED = "not "
AGGREGATION = "| "
#: Indicators used by more rules than this do not propose candidates (they still count in scores).
CANDIDATE_LIMIT = 24
#: A rule's rarest keys that propose candidates, and how many candidates get the exact score (the
#: best by rare shared weight): the work per rule is bounded, whatever the catalog's size.
PROPOSING_KEYS = 8
SCORED_CANDIDATES = 8
#: Similar rules kept per rule, and the least score worth showing.
SIMILAR_LIMIT = 5
MIN_SCORE = 0.2


@dataclass(frozen=True, slots=True)
class Similar:
    """Another rule like this one: its slug, the score (0..1), the indicators both have."""

    slug: str
    score: float
    shared: tuple[IndicatorKey, ...]
    same_logsource: bool

    @property
    def shared_indicators(self) -> tuple[IndicatorKey, ...]:
        """The shared keys that are indicators (not excluded values or aggregations)."""
        return tuple(key for key in self.shared if not key[0].startswith((EXCLUDED, AGGREGATION)))

    @property
    def likely_duplicate(self) -> bool:
        return self.score >= LIKELY_DUPLICATE and len(self.shared) >= DUPLICATE_MIN_SHARED


@dataclass(frozen=True, slots=True)
class Cluster:
    """Rules linked by likely-duplicate pairs; `pairs` are (slug, slug, score), best first."""

    slugs: tuple[str, ...]
    pairs: tuple[tuple[str, str, float], ...]


class Similarity:
    """The similar rules of every detection rule of one catalog."""

    def __init__(self, catalog: Catalog, previous: "Similarity | None" = None) -> None:
        """`previous`: the similarity of the catalog before an edit (mkdocs serve); the rankings
        the edit cannot have changed are taken from it instead of computed again."""
        self._corpus = catalog.corpus
        # Keys are numbered: a rule's keys are a set of small ints, so that intersections and weight
        # look-ups neither hash tuples nor touch their strings (most of the time on a large corpus).
        # Only keys other rules have too are numbered: a rule's own keys weigh in its total and can
        # never be shared. The numbering only grows, so it is shared with `previous`: the same key,
        # the same number.
        self._ids: dict[IndicatorKey, int] = previous._ids if previous is not None else {}
        self._keys: dict[str, frozenset[int]] = {}
        self._own: dict[str, int] = {}  # slug -> how many indicators the rule alone has
        self._logsource: dict[str, tuple] = {}
        self._extra: dict[int, int] = {}  # how many rules have each key the corpus index has not
        self._made_of: dict[str, tuple] = {}  # slug -> (its analysis, its extra keys)
        found = self._read(catalog, previous)
        self._total = max(len(self._keys), 1)
        self._key_of: list[IndicatorKey] = list(self._ids)  # a key's number is its place in `ids`
        users = _Users(self._corpus, self._key_of, found)
        self._weights = _Weights(users, self._extra, self._total)
        self._proposers = _Proposers(users)
        self._totals: dict[str, float] = {}
        self._scores: dict[tuple[str, str], float] = {}  # a pair's score, computed once for both rules
        self._by_rule: dict[str, list[Similar]] = {}
        self._candidates: dict[str, list[str]] = {}  # slug -> the rules its ranking scored
        if previous is not None and previous._total == self._total:
            self._reuse(previous)

    def _reuse(self, previous: "Similarity") -> None:
        """Keep what of `previous` no changed rule can reach. A rule whose keys or log source changed
        (or that came or went) changes the weights of its old and new keys, and so the total weight
        of every rule having one of them ("affected"). A ranking depends on the rule's own keys and
        on its candidates' totals: it is kept when neither the rule nor a candidate is affected."""
        changed = {slug for slug in self._keys.keys() | previous._keys.keys()
                   if self._keys.get(slug) != previous._keys.get(slug) or self._logsource.get(slug) != previous._logsource.get(slug)}
        touched: set[int] = set()
        for slug in changed:
            touched.update(previous._keys.get(slug, ()), self._keys.get(slug, ()))
        affected = changed | {slug for slug, keys in self._keys.items() if not keys.isdisjoint(touched)}
        for slug in self._keys.keys() - affected:
            if slug in previous._totals:
                self._totals[slug] = previous._totals[slug]
            candidates = previous._candidates.get(slug)
            if candidates is not None and affected.isdisjoint(candidates):
                self._by_rule[slug] = previous._by_rule[slug]
                self._candidates[slug] = candidates
        self._weights.update((key, weight) for key, weight in previous._weights.items() if key not in touched)

    def _read(self, catalog: Catalog, previous: "Similarity | None") -> dict[int, list[str]]:
        """Every detection rule's keys, log source and extra keys (an unchanged rule's from
        `previous`); returns the rules using each key numbered here (found in the corpus index)."""
        found: dict[int, list[str]] = {}
        kept = set()
        for entry in catalog.entries:
            if isinstance(entry.document, Rule) and entry.analysis is not None and entry.analysis.indicators:
                made_of = previous._made_of.get(entry.slug) if previous is not None else None
                if made_of is not None and made_of[0] is entry.analysis:  # an unchanged rule (the load cache's object)
                    extra = made_of[1]
                    self._keys[entry.slug], self._own[entry.slug] = previous._keys[entry.slug], previous._own[entry.slug]
                    kept.add(entry.slug)
                else:
                    extra = self._number(entry, found)
                for key in extra:
                    self._extra[key] = self._extra.get(key, 0) + 1
                self._made_of[entry.slug] = (entry.analysis, extra)
                source = entry.document.logsource
                self._logsource[entry.slug] = (source.product, source.category, source.service)
        if kept:  # an unchanged rule another rule now shares an indicator with: that indicator is no longer its own
            by_slug = catalog.by_slug()
            for slug in {slug for number, rules in found.items() for slug in rules if slug in kept and number not in self._keys[slug]}:
                self._number(by_slug[slug], found)
        return found

    def _number(self, entry: Entry, found: dict[int, list[str]]) -> frozenset[int]:
        """Sets the rule's keys (its indicators other rules have too, numbered, and its extra keys)
        and how many indicators it alone has, in one corpus look-up per indicator; returns its
        extra keys."""
        ids = self._ids
        extra = frozenset([ids.setdefault(key, len(ids)) for key in _extra_keys(entry)])
        shared, own = self._corpus.split(entry.analysis.indicators)
        numbers = []
        for key, rules in shared:
            number = ids.setdefault(key, len(ids))
            found[number] = rules
            numbers.append(number)
        self._keys[entry.slug], self._own[entry.slug] = frozenset(numbers) | extra, own
        return extra

    def of(self, slug: str) -> list[Similar]:
        """Up to SIMILAR_LIMIT rules most like `slug`'s, best first (ties by slug)."""
        found = self._by_rule.get(slug)
        if found is None:
            found = self._by_rule[slug] = self._rank(slug) if slug in self._keys else []
        return found

    def all(self) -> dict[str, list[Similar]]:
        return {slug: self.of(slug) for slug in self._keys}

    def scored_per_rule(self) -> float:
        """Candidates given the exact score per ranked rule (at most SCORED_CANDIDATES): the work
        the step does per rule, whatever the catalog's size."""
        return sum(map(len, self._candidates.values())) / max(len(self._candidates), 1)

    def _rank(self, slug: str) -> list[Similar]:
        key_of, proposers = self._key_of, self._proposers
        rare_shared: dict[str, float] = {}
        proposing = [(len(sharing), key_of[key], key, sharing) for key in self._keys[slug]
                     if (sharing := proposers[key]) is not None]
        for _, _, key, sharing in heapq.nsmallest(PROPOSING_KEYS, proposing):
            weight = self._weights[key]
            for other in sharing:
                if other != slug and other in self._keys:
                    rare_shared[other] = rare_shared.get(other, 0.0) + weight
        best = self._candidates[slug] = heapq.nsmallest(SCORED_CANDIDATES, rare_shared, key=lambda other: (-rare_shared[other], other))
        scored = sorted(((self._score(slug, other), other) for other in best), key=lambda pair: (-pair[0], pair[1]))
        return [self.compare(slug, other) for score, other in scored[:SIMILAR_LIMIT] if score >= MIN_SCORE]

    def _score(self, slug: str, other: str) -> float:
        """The weighted Jaccard index of two rules' key sets."""
        pair = (slug, other) if slug < other else (other, slug)
        score = self._scores.get(pair)
        if score is None:
            common = sum(map(self._weights.__getitem__, self._keys[slug] & self._keys[other]))
            union = self._total_weight(slug) + self._total_weight(other) - common
            score = self._scores[pair] = round(common / union, 3) if union > 0 else 0.0
        return score

    def _total_weight(self, slug: str) -> float:
        total = self._totals.get(slug)
        if total is None:
            total = self._totals[slug] = (sum(map(self._weights.__getitem__, self._keys[slug]))
                                          + self._own[slug] * math.log(1 + self._total))
        return total

    def compare(self, slug: str, other: str) -> Similar:
        """The pair's score and what the rules share (most specific first)."""
        key_of = self._key_of
        # by key, then (a stable sort) by weight, the heaviest first: the most specific first, ties by key
        shared = sorted(sorted(self._keys[slug] & self._keys[other], key=key_of.__getitem__), key=self._weights.__getitem__, reverse=True)
        return Similar(other, self._score(slug, other), tuple(map(key_of.__getitem__, shared)),
                       self._logsource[slug] == self._logsource[other])

    def clusters(self) -> list[Cluster]:
        """Groups of rules joined by likely-duplicate pairs, largest and best first."""
        parent: dict[str, str] = {}

        def root(slug: str) -> str:
            while parent.setdefault(slug, slug) != slug:
                parent[slug] = parent[parent[slug]]
                slug = parent[slug]
            return slug

        pairs: dict[tuple[str, str], float] = {}
        for slug in self._keys:
            for similar in self.of(slug):
                if similar.likely_duplicate:
                    pairs[tuple(sorted((slug, similar.slug)))] = similar.score
                    parent[root(slug)] = root(similar.slug)
        grouped: dict[str, list[tuple[str, str, float]]] = {}
        for (first, second), score in pairs.items():
            grouped.setdefault(root(first), []).append((first, second, score))
        clusters = [_cluster(members) for members in grouped.values()]
        clusters.sort(key=lambda cluster: (-len(cluster.slugs), -cluster.pairs[0][2], cluster.slugs))
        return clusters

    def top_pairs(self, count: int) -> list[tuple[str, str, float]]:
        """The `count` best-scoring pairs of the catalog (each pair once)."""
        pairs = {tuple(sorted((slug, similar.slug))): similar for slug in self._keys for similar in self.of(slug)}
        ranked = sorted(pairs.items(), key=lambda item: (-item[1].score, -len(item[1].shared), item[0]))  # more shared: surer
        return [(first, second, similar.score) for (first, second), similar in ranked[:count]]


class _Users(dict):
    """key number -> the rules using it: what numbering the rule's keys found in the corpus index,
    else (a rule `previous` had numbered) looked up there on first use."""

    def __init__(self, corpus: CorpusIndex, key_of: list[IndicatorKey], found: dict[int, list[str]]) -> None:
        super().__init__(found)
        self._corpus, self._key_of = corpus, key_of

    def __missing__(self, key: int) -> list[str]:
        rules = self[key] = self._corpus.sharing(self._key_of[key])
        return rules


class _Weights(dict):
    """key number -> its weight, `log(1 + rules / rules using it)`, computed on first use (a dict,
    so that sums over key sets look weights up in C)."""

    def __init__(self, users: _Users, extra: dict[int, int], rules: int) -> None:
        super().__init__()
        self._users, self._extra, self._rules = users, extra, rules

    def __missing__(self, key: int) -> float:
        users = self._extra[key] if key in self._extra else len(self._users[key])
        weight = self[key] = math.log(1 + self._rules / max(users, 1))
        return weight


class _Proposers(dict):
    """key number -> the rules using it when it proposes candidates (more than one and at most
    CANDIDATE_LIMIT rules use it), else None."""

    def __init__(self, users: _Users) -> None:
        super().__init__()
        self._users = users

    def __missing__(self, key: int) -> list[str] | None:
        rules = self._users[key]
        found = self[key] = rules if 1 < len(rules) <= CANDIDATE_LIMIT else None
        return found


def _extra_keys(entry: Entry) -> frozenset[IndicatorKey]:
    """Keys apart from the indicators: the (field, kind, value) tests of the rule's own exclusions
    (alone or in combination), and its legacy aggregations (`| count() by x > 5`: other logic)."""
    analysis = entry.analysis
    excluded = {
        (EXCLUDED + item.field_label, item.kind, value.lower())
        for exclusion in analysis.exclusions for search in exclusion.searches
        for alternative in search.alternatives for item in alternative for value in item.values
    }
    return frozenset(excluded | {(AGGREGATION, "aggregation", " ".join(text.split())) for text in analysis.aggregations})


def _cluster(pairs: Iterable[tuple[str, str, float]]) -> Cluster:
    ordered = tuple(sorted(pairs, key=lambda pair: (-pair[2], pair[0], pair[1])))
    slugs = tuple(sorted({slug for pair in ordered for slug in pair[:2]}))
    return Cluster(slugs, ordered)


def most_similar(similarity: Similarity, entry: Entry) -> Similar | None:
    """The rule most like `entry`'s when the pair is a likely duplicate, else None."""
    found = similarity.of(entry.slug)
    return found[0] if found and found[0].likely_duplicate else None


def duplicate_findings(catalog: Catalog, similarity: Similarity) -> list[Problem]:
    """A warning on each rule that is a likely duplicate of another."""
    by_slug = catalog.by_slug()
    found = []
    for entry in catalog.rules:
        similar = most_similar(similarity, entry)
        if similar is None:
            continue
        other = by_slug[similar.slug].document
        source = entry.document.source
        found.append(Problem(source.file_display, source.line, 1, Severity.WARNING, Code.LIKELY_DUPLICATE,
                             f"likely a duplicate of '{other.title}' ({catalog.shown_path(other)}): similarity {similar.score:.2f}, "
                             f"{len(similar.shared)} indicators and exclusions shared"))
    return found
