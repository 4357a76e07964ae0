"""Sigma value modifiers: which exist, which chains make sense, and the indicator kind they give."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

#: Modifiers that decide how a value is compared, with the kind name the catalog shows.
MATCH_KINDS = {
    "contains": "contains",
    "startswith": "starts_with",
    "endswith": "ends_with",
    "re": "regex",
    "cidr": "cidr",
    "exists": "exists",
    "fieldref": "fieldref",
    "gt": "gt",
    "gte": "gte",
    "lt": "lt",
    "lte": "lte",
}
#: Modifiers that transform the value before it is compared; they qualify the kind.
TRANSFORMS = {"base64", "base64offset", "utf16le", "utf16be", "utf16", "wide", "windash", "expand", "cased"}
#: Regular-expression flags, only after `re`, with their long spellings.
REGEX_FLAGS = {"i": "i", "ignorecase": "i", "m": "m", "multiline": "m", "s": "s", "dotall": "s"}
#: Time-part modifiers of Sigma 2 (`Timestamp|hour: 3`) and negation.
OTHERS = {"all", "neq", "minute", "hour", "day", "week", "month", "year"}

KNOWN = set(MATCH_KINDS) | TRANSFORMS | set(REGEX_FLAGS) | OTHERS

# A value comparison of this kind cannot also be one of these.
_STRING_MATCHES = {"contains", "startswith", "endswith"}
_ENCODINGS = {"utf16le", "utf16be", "utf16", "wide"}
_BASE64 = {"base64", "base64offset"}


@dataclass(frozen=True, slots=True)
class ModifierChain:
    """A parsed `|mod|mod` chain: the comparison, its qualifiers, and what was wrong with it."""

    match: str | None  # a key of MATCH_KINDS, or None for plain equality
    qualifiers: tuple[str, ...]  # transforms, regex flags, time parts and neq, in written order
    match_all: bool
    problems: tuple[str, ...]
    field_reference: bool = False  # `fieldref`: the values name other fields, they are not literals

    def kind(self, value: object, keyword: bool) -> str:
        """The indicator kind of one value, e.g. `contains, base64offset` or `regex, i`."""
        if self.field_reference and self.match != "fieldref":
            base = f"fieldref, {MATCH_KINDS[self.match]}"  # `fieldref|endswith`: pySigma's field-reference matches
        elif self.match is not None:
            base = MATCH_KINDS[self.match]
        elif value is None:
            base = "null"
        elif keyword:
            base = "keyword"
        elif isinstance(value, str) and has_wildcard(value):
            base = "wildcard"
        else:
            base = "equals"
        return ", ".join((base, *self.qualifiers)) if self.qualifiers else base

    @property
    def case_sensitive(self) -> bool:
        """Regular expressions, `cased` strings and field names (`fieldref`) compare exactly."""
        return self.match == "re" or self.field_reference or "cased" in self.qualifiers


@lru_cache(maxsize=4096)
def parse_modifiers(modifiers: tuple[str, ...]) -> ModifierChain:
    match: str | None = None
    qualifiers: list[str] = []
    problems: list[str] = []
    for position, raw in enumerate(modifiers):
        name = raw.lower()
        if name not in KNOWN:
            problems.append(f"unknown modifier '{raw}'")
        elif name in MATCH_KINDS:
            if match == "fieldref" and name in _STRING_MATCHES:
                match = name  # the other field's value is matched as a prefix, suffix or part
                continue
            if match is not None:
                problems.append(f"'{raw}' cannot follow '{match}': a value has one comparison")
            match = name
        elif name in REGEX_FLAGS:
            if match != "re":
                problems.append(f"regular-expression flag '{raw}' needs 're' before it")
            qualifiers.append(REGEX_FLAGS[name])
        elif name == "all":
            continue
        else:
            if name == "base64offset" and "contains" not in (m.lower() for m in modifiers[position + 1 :]):
                problems.append("'base64offset' only makes sense followed by 'contains'")
            if name in _ENCODINGS and not _BASE64 & {m.lower() for m in modifiers[position + 1 :]}:
                problems.append(f"'{raw}' must be followed by 'base64' or 'base64offset'")
            if name in TRANSFORMS and match in {"re", "cidr", "exists", "gt", "gte", "lt", "lte"}:
                problems.append(f"'{raw}' cannot follow '{match}'")
            qualifiers.append(name)
    if match in {"cidr", "exists", "gt", "gte", "lt", "lte"} and qualifiers:
        problems.append(f"'{match}' takes no other modifier")
    field_reference = "fieldref" in (m.lower() for m in modifiers)
    return ModifierChain(match, tuple(qualifiers), "all" in (m.lower() for m in modifiers), tuple(problems), field_reference)


def has_wildcard(value: str) -> bool:
    """True when `value` has a `*` or `?` not escaped by a backslash."""
    escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "*?":
            return True
    return False
