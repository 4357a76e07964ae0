"""The corpus index: which rules use each (field, kind, value) indicator, built in one pass."""

from __future__ import annotations

from typing import Iterable

from catalog.analysis import Indicator, IndicatorKey


class CorpusIndex:
    """Maps each normalised indicator to the rules that use it (by slug, in catalog order)."""

    def __init__(self) -> None:
        self._rules: dict[IndicatorKey, list[str]] = {}

    def add(self, slug: str, indicators: Iterable[Indicator]) -> None:
        for indicator in indicators:  # analysis keeps one indicator per key and rule
            self._rules.setdefault(indicator.key, []).append(slug)

    def count(self, key: IndicatorKey) -> int:
        return len(self._rules.get(key, ()))

    def sharing(self, key: IndicatorKey) -> list[str]:
        return self._rules.get(key, [])

    def shared(self) -> list[tuple[IndicatorKey, list[str]]]:
        """Indicators used by more than one rule, most shared first (ties by key, for stable output)."""
        shared = [(key, slugs) for key, slugs in self._rules.items() if len(slugs) > 1]
        shared.sort(key=lambda pair: (-len(pair[1]), pair[0]))
        return shared

    def __len__(self) -> int:
        return len(self._rules)
