"""Sigma `attack.*` tags resolved against one ATT&CK release: the rule page's coverage table.

Nothing a rule tags is dropped: each attack.* tag ends up in a tactic row, `unknown_techniques`,
`groups`, `software` or `other_tags`, and every surprise (unknown, revoked, deprecated, malformed,
technique under an untagged tactic) becomes an `AttackFinding`: a warning, with the tag to write
instead where there is one, reported at the tag by the pipeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from catalog.attack.knowledge import AttackKnowledge, Group, Software, Tactic, Technique, normalize_tactic_name
from catalog.problems import Code, Severity


_TECHNIQUE = re.compile(r"t\d{4}(?:\.\d{3})?")
_GROUP = re.compile(r"g\d{4}")
_SOFTWARE = re.compile(r"s\d{4}")
_TACTIC_ID = re.compile(r"ta\d{4}")
_ID_LIKE = re.compile(r"(?:ta|[tgs])\d")  # starts like one of the ids above: malformed if not one
_OTHER_ID = re.compile(r"[a-z]{1,3}\d{4}")  # ds0005, c0001, m1040...: ATT&CK ids a rule may carry
_TACTIC_NAME = re.compile(r"[a-z]+(?:[-_][a-z]+)*")
_BARE_TECHNIQUE = re.compile(r"\d{4}(?:\.\d{3})?")

#: Said in the message when a rule uses a tactic name a release no longer has.
_RETIRED_TACTICS = {
    "defense-evasion": "ATT&CK v19 split Defense Evasion (TA0005) into stealth (TA0005) and defense-impairment (TA0112)",
}


@dataclass(frozen=True, slots=True)
class MappedTechnique:
    technique: Technique  # the current one, revocation followed
    tag: str  # as written in the rule
    derived: bool  # listed under a tactic of the technique that the rule does not tag
    replaced: str | None  # the revoked id the rule wrote (T1086), when `technique` replaces it
    deprecated: bool
    also_tags: tuple[str, ...] = ()  # other tags of the rule resolving to this technique (a revoked id and its replacement)


@dataclass(frozen=True, slots=True)
class TacticRow:
    tactic: Tactic
    techniques: tuple[MappedTechnique, ...]  # by technique id; the one written directly before a replacement


@dataclass(frozen=True, slots=True)
class AttackFinding:
    tag: str
    severity: Severity
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class AttackMapping:
    rows: tuple[TacticRow, ...]  # matrix order; a tagged tactic gets a row even with no technique
    groups: tuple[Group, ...]
    software: tuple[Software, ...]
    unknown_techniques: tuple[str, ...]  # ids not in this release (T9999), upper case
    other_tags: tuple[str, ...]  # any other attack.* tag as written: unknown tactics/groups/software, malformed, ds/campaign ids
    findings: tuple[AttackFinding, ...]
    release: str

    @property
    def techniques(self) -> tuple[MappedTechnique, ...]:
        """Each mapped technique tag once (a technique under two tactics is one entry), in row order."""
        return tuple(dict.fromkeys(mapped for row in self.rows for mapped in row.techniques))

    @property
    def is_empty(self) -> bool:
        return not (self.rows or self.groups or self.software or self.unknown_techniques or self.other_tags)


def map_tags(tags: Sequence[str], kb: AttackKnowledge) -> AttackMapping:
    """Resolve a rule's tags (all of them; non-attack tags are ignored) against `kb`."""
    mapper = _Mapper(kb)
    seen: set[str] = set()
    for raw in tags:
        tag = str(raw).strip()
        key = tag.lower()
        if key.startswith("attack.") and key not in seen:
            seen.add(key)
            mapper.read(tag, key[len("attack."):])
    return mapper.mapping()


class _Mapper:
    """What one rule's attack.* tags resolve to, gathered tag by tag; every finding is a warning
    that says what to tag instead (the same findings for `analyze`, `check` and the site)."""

    def __init__(self, kb: AttackKnowledge) -> None:
        self.kb = kb
        self.findings: list[AttackFinding] = []
        self.tagged_tactics: dict[str, Tactic] = {}
        self.written: list[tuple[str, Technique, str | None]] = []  # (tag, current technique, replaced id)
        self.groups: dict[str, Group] = {}
        self.software: dict[str, Software] = {}
        self.unknown: list[str] = []
        self.other: list[str] = []

    def note(self, tag: str, code: str, message: str) -> None:
        self.findings.append(AttackFinding(tag, Severity.WARNING, code, message))

    def read(self, tag: str, rest: str) -> None:
        if _TECHNIQUE.fullmatch(rest):
            self.technique(tag, rest.upper())
        elif _GROUP.fullmatch(rest) or _SOFTWARE.fullmatch(rest):
            self.group_or_software(tag, rest)
        elif _TACTIC_ID.fullmatch(rest) or _TACTIC_NAME.fullmatch(rest):
            self.tactic(tag, rest)
        elif _OTHER_ID.fullmatch(rest) and not _ID_LIKE.match(rest):
            self.other.append(tag)  # data sources, campaigns, mitigations: plain tags, nothing to check
        else:
            self.other.append(tag)
            hint = f"; did you mean attack.t{rest}?" if _BARE_TECHNIQUE.fullmatch(rest) else ""
            self.note(tag, Code.MALFORMED_TAG,
                      f"'{tag}' is not an ATT&CK tag (attack.tNNNN[.NNN], attack.gNNNN, attack.sNNNN or a tactic name){hint}")

    def technique(self, tag: str, technique_id: str) -> None:
        label = self.kb.label
        found = self.kb.technique(technique_id)
        if found is None:
            self.unknown.append(technique_id)
            self.note(tag, Code.UNKNOWN_TECHNIQUE, f"{technique_id} is not in {label}")
            return
        current = self.kb.current_technique(technique_id) or found
        replaced = None
        if found.revoked:
            if current is not found:
                replaced = found.id
                self.note(tag, Code.REVOKED_TECHNIQUE,
                          f"{found.id} ({found.name}) is revoked in {label}; shown as its replacement {current.id} {current.name}; "
                          f"tag attack.{current.id.lower()} instead")
            else:
                self.note(tag, Code.REVOKED_TECHNIQUE, f"{found.id} ({found.name}) is revoked in {label} with no replacement")
        if current.deprecated:
            self.note(tag, Code.DEPRECATED_TECHNIQUE, f"{current.id} ({current.name}) is deprecated in {label}")
        if not current.tactics:  # no tactic to list it under: keep it visible as a plain tag
            self.other.append(tag)
            return
        self.written.append((tag, current, replaced))

    def group_or_software(self, tag: str, rest: str) -> None:
        label = self.kb.label
        is_group = rest.startswith("g")
        lookup = self.kb.group if is_group else self.kb.software
        noun, revoked, unknown_code = ("a group", Code.REVOKED_GROUP, Code.UNKNOWN_GROUP) if is_group else ("software", Code.REVOKED_SOFTWARE, Code.UNKNOWN_SOFTWARE)
        item = lookup(rest)
        if item is not None and item.revoked_by and lookup(item.revoked_by):
            self.note(tag, revoked, f"{item.id} is revoked in {label}; shown as {item.revoked_by}; tag attack.{item.revoked_by.lower()} instead")
            item = lookup(item.revoked_by)
        if item is None:
            self.other.append(tag)
            self.note(tag, unknown_code, f"{rest.upper()} is not {noun} in {label}")
        else:
            (self.groups if is_group else self.software).setdefault(item.id, item)

    def tactic(self, tag: str, rest: str) -> None:
        by_id = _TACTIC_ID.fullmatch(rest)
        tactic = self.kb.tactic(rest) if by_id else self.kb.tactic_by_shortname(rest)
        if tactic is not None:
            self.tagged_tactics.setdefault(tactic.shortname, tactic)
            return
        self.other.append(tag)
        name = rest.upper() if by_id else normalize_tactic_name(rest)
        hint = _RETIRED_TACTICS.get(name)
        self.note(tag, Code.UNKNOWN_TACTIC, f"{name} is not a tactic in {self.kb.label}" + (f" ({hint})" if hint else ""))

    def mapping(self) -> AttackMapping:
        """Each technique under the rule's tactics that it belongs to, else under all of its own."""
        kb = self.kb
        placed: dict[str, dict[str, MappedTechnique]] = {}
        for tag, technique, replaced, also_tags in _one_per_technique(self.written):
            own = [name for name in technique.tactics if name in self.tagged_tactics]
            if not own:
                names = ", ".join(kb.tactic_by_shortname(n).name for n in technique.tactics)  # type: ignore[union-attr]
                self.note(tag, Code.TECHNIQUE_TACTIC_NOT_TAGGED,
                          f"{technique.id} belongs to {names}, which the rule does not tag; listed there as derived; add "
                          + " or ".join(f"attack.{name}" for name in technique.tactics))
            for name in own or technique.tactics:
                placed.setdefault(name, {})[technique.id] = MappedTechnique(
                    technique, tag, not own, replaced, technique.deprecated, also_tags
                )
        rows = tuple(
            TacticRow(tactic, tuple(sorted(placed.get(tactic.shortname, {}).values(), key=_row_order)))
            for tactic in kb.tactics
            if tactic.shortname in self.tagged_tactics or tactic.shortname in placed
        )
        return AttackMapping(
            rows=rows,
            groups=tuple(self.groups.values()),
            software=tuple(self.software.values()),
            unknown_techniques=tuple(dict.fromkeys(self.unknown)),
            other_tags=tuple(self.other),
            findings=tuple(self.findings),
            release=kb.release,
        )


def _one_per_technique(
    written: list[tuple[str, Technique, str | None]],
) -> list[tuple[str, Technique, str | None, tuple[str, ...]]]:
    """One entry per technique: a rule tagging T1086 (revoked) and its replacement T1059.001 lists
    T1059.001 once, under the tag written directly, noting the other tag."""
    by_id: dict[str, list[tuple[str, Technique, str | None]]] = {}
    for item in written:
        by_id.setdefault(item[1].id, []).append(item)
    merged = []
    for items in by_id.values():
        tag, technique, replaced = next((item for item in items if item[2] is None), items[0])
        merged.append((tag, technique, replaced, tuple(item[0] for item in items if item[0] != tag)))
    return merged


def _row_order(mapped: MappedTechnique) -> tuple[str, bool, str]:
    return mapped.technique.id, mapped.replaced is not None, mapped.tag
