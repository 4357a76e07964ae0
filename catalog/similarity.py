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
        # Keys and rules are numbered: a rule's keys are a set of small ints, and the rules using a
        # key a list of ints, so that intersections and look-ups neither hash tuples nor touch
        # strings scattered over the catalog's memory (most of the time on a large corpus). Only
        # keys other rules have too are numbered: a rule's own keys weigh in its total and can never
        # be shared. The key numbering only grows, so it is shared with `previous`: the same key,
        # the same number. Rules are numbered afresh, in catalog order.
        self._ids: dict[IndicatorKey, int] = previous._ids if previous is not None else {}
        # by rule number: its slug, keys, how many indicators it alone has, its log source
        self._slugs: list[str] = []
        self._keys: list[frozenset[int]] = []
        self._own: list[int] = []
        self._logsource: list[tuple] = []
        self._number: dict[str, int] = {}  # slug -> rule number
        self._made_of: dict[str, tuple] = {}  # slug -> (its analysis, its extra keys)
        # by key number: its weight, and the rules using it where it proposes candidates (more
        # than one and at most CANDIDATE_LIMIT rules use it), else None
        self._weights: list[float] = []
        self._proposers: list[list[int] | None] = []
        self._read(catalog, previous)
        self._total = max(len(self._slugs), 1)
        self._key_of: list[IndicatorKey] = list(self._ids)  # a key's number is its place in `ids`
        self._totals: list[float | None] = [None] * len(self._slugs)  # each rule's total weight, once needed
        self._scores: dict[int, float] = {}  # a pair's score, by lower number * rules + higher: computed once for both
        self._by_rule: dict[str, list[Similar]] = {}
        self._candidates: dict[str, list[str]] = {}  # slug -> the rules its ranking scored
        if previous is not None and previous._total == self._total:
            self._reuse(previous)

    def _reuse(self, previous: "Similarity") -> None:
        """Keep what of `previous` no changed rule can reach. A rule whose keys or log source changed
        (or that came or went) changes the weights of its old and new keys, and so the total weight
        of every rule having one of them ("affected"). A ranking depends on the rule's own keys and
        on its candidates' totals: it is kept when neither the rule nor a candidate is affected."""
        now, before = self._shapes(), previous._shapes()
        changed = {slug for slug in now.keys() | before.keys() if now.get(slug) != before.get(slug)}
        touched: set[int] = set()
        for slug in changed:
            for shape in (now.get(slug), before.get(slug)):
                if shape is not None:
                    touched.update(shape[0])
        affected = changed | {slug for slug, (keys, _) in now.items() if not keys.isdisjoint(touched)}
        for number, slug in enumerate(self._slugs):
            if slug in affected:
                continue
            self._totals[number] = previous._totals[previous._number[slug]]
            candidates = previous._candidates.get(slug)
            if candidates is not None and affected.isdisjoint(candidates):
                self._by_rule[slug] = previous._by_rule[slug]
                self._candidates[slug] = candidates

    def _shapes(self) -> dict[str, tuple[frozenset[int], tuple]]:
        """slug -> what its ranking reads of it: its keys and its log source."""
        return dict(zip(self._slugs, zip(self._keys, self._logsource)))

    def _read(self, catalog: Catalog, previous: "Similarity | None") -> None:
        """Every detection rule's keys, log source and extra keys (an unchanged rule's extra keys
        from `previous`), and every key's weight and proposers. The shared keys come from one pass
        over the corpus index's shared indicators, not a look-up per indicator of every rule."""
        ids, rule_number = self._ids, self._number
        numbers: list[list[int]] = []  # by rule number: its keys
        extra_users: dict[int, int] = {}  # how many rules have each extra key (the corpus index has none)
        sizes = []  # by rule number: (its indicators, its extra keys)
        for entry in catalog.entries:
            if isinstance(entry.document, Rule) and entry.analysis is not None and entry.analysis.indicators:
                made_of = previous._made_of.get(entry.slug) if previous is not None else None
                if made_of is not None and made_of[0] is entry.analysis:  # an unchanged rule (the load cache's object)
                    extra = made_of[1]
                else:
                    extra = frozenset([ids.setdefault(key, len(ids)) for key in _extra_keys(entry)])
                for key in extra:
                    extra_users[key] = extra_users.get(key, 0) + 1
                self._made_of[entry.slug] = (entry.analysis, extra)
                rule_number[entry.slug] = len(self._slugs)
                self._slugs.append(entry.slug)
                source = entry.document.logsource
                self._logsource.append((source.product, source.category, source.service))
                numbers.append(list(extra))
                sizes.append((len(entry.analysis.indicators), len(extra)))
        rules_count = max(len(numbers), 1)
        shared = [(ids.setdefault(key, len(ids)), slugs) for key, slugs in catalog.corpus.each_shared()]
        weights, proposers = self._weights, self._proposers
        weights.extend([0.0] * len(ids))
        proposers.extend([None] * len(ids))
        for number, users in extra_users.items():
            weights[number] = math.log(1 + rules_count / users)
        for number, slugs in shared:
            users = [rule_number[slug] for slug in slugs]  # the corpus index holds detection rules' indicators only
            weights[number] = math.log(1 + rules_count / len(users))
            if len(users) <= CANDIDATE_LIMIT:
                proposers[number] = users
            for user in users:
                numbers[user].append(number)
        self._keys = [frozenset(keys) for keys in numbers]
        self._own = [indicators - (len(keys) - extra) for keys, (indicators, extra) in zip(numbers, sizes)]

    def of(self, slug: str) -> list[Similar]:
        """Up to SIMILAR_LIMIT rules most like `slug`'s, best first (ties by slug)."""
        found = self._by_rule.get(slug)
        if found is None:
            number = self._number.get(slug)
            found = self._by_rule[slug] = self._rank(number) if number is not None else []
        return found

    def all(self) -> dict[str, list[Similar]]:
        return {slug: self.of(slug) for slug in self._slugs}

    def scored_per_rule(self) -> float:
        """Candidates given the exact score per ranked rule (at most SCORED_CANDIDATES): the work
        the step does per rule, whatever the catalog's size."""
        return sum(map(len, self._candidates.values())) / max(len(self._candidates), 1)

    def _rank(self, rule: int) -> list[Similar]:
        key_of, proposers, weights, slugs = self._key_of, self._proposers, self._weights, self._slugs
        rare_shared: dict[int, float] = {}
        proposing = [(len(sharing), key_of[key], key, sharing) for key in self._keys[rule]
                     if (sharing := proposers[key]) is not None]
        for _, _, key, sharing in heapq.nsmallest(PROPOSING_KEYS, proposing):
            weight = weights[key]
            for other in sharing:
                if other != rule:
                    rare_shared[other] = rare_shared.get(other, 0.0) + weight
        best = heapq.nsmallest(SCORED_CANDIDATES, rare_shared, key=lambda other: (-rare_shared[other], slugs[other]))
        self._candidates[slugs[rule]] = [slugs[other] for other in best]
        scored = sorted(((self._score(rule, other), slugs[other], other) for other in best), key=lambda found: (-found[0], found[1]))
        return [self._similar(rule, other, score) for score, _, other in scored[:SIMILAR_LIMIT] if score >= MIN_SCORE]

    def _score(self, rule: int, other: int) -> float:
        """The weighted Jaccard index of two rules' key sets."""
        pair = rule * self._total + other if rule < other else other * self._total + rule
        score = self._scores.get(pair)
        if score is None:
            common = sum(map(self._weights.__getitem__, self._keys[rule] & self._keys[other]))
            union = self._total_weight(rule) + self._total_weight(other) - common
            score = self._scores[pair] = round(common / union, 3) if union > 0 else 0.0
        return score

    def _total_weight(self, rule: int) -> float:
        total = self._totals[rule]
        if total is None:
            total = self._totals[rule] = (sum(map(self._weights.__getitem__, self._keys[rule]))
                                          + self._own[rule] * math.log(1 + self._total))
        return total

    def compare(self, slug: str, other: str) -> Similar:
        """The pair's score and what the rules share (most specific first)."""
        first, second = self._number[slug], self._number[other]
        return self._similar(first, second, self._score(first, second))

    def _similar(self, rule: int, other: int, score: float) -> Similar:
        key_of = self._key_of
        # by key, then (a stable sort) by weight, the heaviest first: the most specific first, ties by key
        shared = sorted(sorted(self._keys[rule] & self._keys[other], key=key_of.__getitem__), key=self._weights.__getitem__, reverse=True)
        return Similar(self._slugs[other], score, tuple(map(key_of.__getitem__, shared)), self._logsource[rule] == self._logsource[other])

    def clusters(self) -> list[Cluster]:
        """Groups of rules joined by likely-duplicate pairs, largest and best first."""
        parent: dict[str, str] = {}

        def root(slug: str) -> str:
            while parent.setdefault(slug, slug) != slug:
                parent[slug] = parent[parent[slug]]
                slug = parent[slug]
            return slug

        pairs: dict[tuple[str, str], float] = {}
        for slug in self._slugs:
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
        pairs = {tuple(sorted((slug, similar.slug))): similar for slug in self._slugs for similar in self.of(slug)}
        ranked = sorted(pairs.items(), key=lambda item: (-item[1].score, -len(item[1].shared), item[0]))  # more shared: surer
        return [(first, second, similar.score) for (first, second), similar in ranked[:count]]


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
