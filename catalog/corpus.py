"""The corpus index: which rules use each (field, kind, value) indicator, built in one pass."""

from __future__ import annotations

from typing import Iterable, Iterator

from catalog.analysis import Indicator, IndicatorKey


class CorpusIndex:
    """Maps each normalised indicator to the rules that use it (by slug, in catalog order)."""

    def __init__(self) -> None:
        # the slug alone while one rule has the indicator (most have, in keyword-heavy sets), a list
        # from the second rule on: a list per indicator cost 70 MB for 900,000 of them
        self._rules: dict[IndicatorKey, str | list[str]] = {}

    def add(self, slug: str, indicators: Iterable[Indicator]) -> None:
        rules = self._rules
        for indicator in indicators:  # analysis keeps one indicator per key and rule
            known = rules.setdefault(indicator.key, slug)
            if known is not slug:
                if isinstance(known, str):
                    rules[indicator.key] = [known, slug]
                else:
                    known.append(slug)

    def count(self, key: IndicatorKey) -> int:
        known = self._rules.get(key)
        return 0 if known is None else 1 if isinstance(known, str) else len(known)

    def counts(self, indicators: Iterable[Indicator]) -> tuple[int, ...]:
        """`count` of each indicator's key, in one pass (a rule page's dependencies, every serve update)."""
        rules = self._rules
        return tuple([0 if (known := rules.get(indicator.key)) is None else 1 if isinstance(known, str) else len(known)
                      for indicator in indicators])

    def each_shared(self) -> Iterator[tuple[IndicatorKey, list[str]]]:
        """Indicators used by more than one rule, with their rules, in the order the index met them."""
        return ((key, slugs) for key, slugs in self._rules.items() if isinstance(slugs, list))

    def shared(self) -> list[tuple[IndicatorKey, list[str]]]:
        """Indicators used by more than one rule, most shared first (ties by key, for stable output)."""
        shared = list(self.each_shared())
        shared.sort(key=lambda pair: (-len(pair[1]), pair[0]))
        return shared

    def __len__(self) -> int:
        return len(self._rules)
