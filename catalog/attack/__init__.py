"""MITRE ATT&CK Enterprise for the catalog: typed knowledge loaded through attackcti, and tag mapping."""

from catalog.attack.knowledge import (
    SNAPSHOT,
    AttackDataError,
    AttackKnowledge,
    Group,
    Software,
    Tactic,
    Technique,
    load_knowledge,
)
from catalog.attack.mapping import AttackFinding, AttackMapping, MappedTechnique, TacticRow, map_tags
from catalog.attack.snapshot import SnapshotInfo, make_snapshot, update_snapshot

__all__ = [
    "SNAPSHOT",
    "AttackDataError",
    "AttackFinding",
    "AttackKnowledge",
    "AttackMapping",
    "Group",
    "MappedTechnique",
    "SnapshotInfo",
    "Software",
    "Tactic",
    "TacticRow",
    "Technique",
    "load_knowledge",
    "make_snapshot",
    "map_tags",
    "update_snapshot",
]
