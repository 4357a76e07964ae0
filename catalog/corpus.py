"""The corpus index: which rules use each (field, kind, value) indicator, built in one pass."""

from __future__ import annotations

from typing import Iterable, Sequence

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

    def split(self, indicators: Sequence[Indicator]) -> tuple[list[tuple[IndicatorKey, list[str]]], int]:
        """One rule's indicators other rules have too, each key with the rules using it, and how many
        it alone has (the similarity step: one look-up per indicator)."""
        rules = self._rules
        shared = []
        for indicator in indicators:
            known = rules.get(indicator.key)
            if isinstance(known, list):
                shared.append((indicator.key, known))
        return shared, len(indicators) - len(shared)

    def sharing(self, key: IndicatorKey) -> list[str]:
        known = self._rules.get(key)
        return [] if known is None else [known] if isinstance(known, str) else known

    def shared(self) -> list[tuple[IndicatorKey, list[str]]]:
        """Indicators used by more than one rule, most shared first (ties by key, for stable output)."""
        shared = [(key, slugs) for key, slugs in self._rules.items() if isinstance(slugs, list)]
        shared.sort(key=lambda pair: (-len(pair[1]), pair[0]))
        return shared

    def __len__(self) -> int:
        return len(self._rules)
