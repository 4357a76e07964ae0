"""MITRE ATT&CK Enterprise as plain typed objects, loaded through attackcti and cached.

`load_knowledge()` reads the trimmed snapshot shipped in `catalog/attack/data/` (or a local STIX
bundle / cti directory), lets attackcti parse it (`MitreAttackClient.from_local`, never TAXII) and
turns what a rule page needs into frozen dataclasses. Parsing STIX costs most of a second even for
the snapshot, so the extracted objects are cached in-process and on disk, keyed by the sha256 of the
source's bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import lzma
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from catalog.attack.description import short_description

log = logging.getLogger("mkdocs.plugins.sigma_catalog.attack")

DATA_DIR = Path(__file__).parent / "data"
SNAPSHOT = DATA_DIR / "enterprise-attack.json.xz"
#: Bump when the extraction below changes, so old disk caches are not reused.
CACHE_FORMAT = 2


class AttackDataError(Exception):
    """ATT&CK data could not be read, parsed or fetched; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class Tactic:
    id: str  # TA0002
    shortname: str  # execution (the kill-chain phase name techniques and Sigma tags use)
    name: str  # Execution
    url: str


@dataclass(frozen=True, slots=True)
class Technique:
    id: str  # T1059 or T1059.001
    name: str
    url: str
    tactics: tuple[str, ...]  # tactic shortnames, in matrix order
    parent: str | None  # parent technique id of a sub-technique
    revoked: bool
    revoked_by: str | None  # the final replacement, revocation chain followed to its end
    deprecated: bool
    description: str = ""  # first paragraph, plain text (catalog.attack.description)

    @property
    def is_subtechnique(self) -> bool:
        return self.parent is not None


@dataclass(frozen=True, slots=True)
class Group:
    id: str  # G0032
    name: str
    url: str
    aliases: tuple[str, ...]  # other names, the primary name left out
    revoked_by: str | None = None
    deprecated: bool = False


@dataclass(frozen=True, slots=True)
class Software:
    id: str  # S0002
    name: str
    url: str
    type: str  # "malware" or "tool"
    revoked_by: str | None = None
    deprecated: bool = False


def normalize_tactic_name(name: str) -> str:
    """Sigma tags write tactics with underscores or hyphens, in any case: `command_and_control`."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")


@dataclass(frozen=True, slots=True)
class AttackKnowledge:
    """One ATT&CK Enterprise release, with lookup tables built once (the site maps thousands of rules)."""

    release: str  # "19.1", or "unknown" when neither the data nor the file name tells
    source_hash: str  # sha256 of the source's bytes (the snapshot, bundle or directory)
    tactics: tuple[Tactic, ...]  # matrix order
    all_techniques: tuple[Technique, ...]  # including revoked and deprecated ones, sorted by id
    all_groups: tuple[Group, ...]
    all_software: tuple[Software, ...]
    _techniques: dict[str, Technique] = field(init=False, repr=False, compare=False)
    _tactics_by_shortname: dict[str, Tactic] = field(init=False, repr=False, compare=False)
    _tactics_by_id: dict[str, Tactic] = field(init=False, repr=False, compare=False)
    _groups: dict[str, Group] = field(init=False, repr=False, compare=False)
    _software: dict[str, Software] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__  # frozen: the lookup tables are derived, set once here
        setattr_(self, "_techniques", {t.id: t for t in self.all_techniques})
        setattr_(self, "_tactics_by_shortname", {t.shortname: t for t in self.tactics})
        setattr_(self, "_tactics_by_id", {t.id: t for t in self.tactics})
        setattr_(self, "_groups", {g.id: g for g in self.all_groups})
        setattr_(self, "_software", {s.id: s for s in self.all_software})

    @property
    def label(self) -> str:
        return f"ATT&CK Enterprise v{self.release}"

    def technique(self, technique_id: str) -> Technique | None:
        """The technique with this id as the data has it (may be revoked or deprecated)."""
        return self._techniques.get(technique_id.strip().upper())

    def current_technique(self, technique_id: str) -> Technique | None:
        """The technique, or its final replacement when it was revoked."""
        found = self.technique(technique_id)
        if found is not None and found.revoked_by:
            return self._techniques.get(found.revoked_by, found)
        return found

    def tactic(self, tactic_id: str) -> Tactic | None:
        return self._tactics_by_id.get(tactic_id.strip().upper())

    def tactic_by_shortname(self, name: str) -> Tactic | None:
        return self._tactics_by_shortname.get(normalize_tactic_name(name))

    def group(self, group_id: str) -> Group | None:
        return self._groups.get(group_id.strip().upper())

    def software(self, software_id: str) -> Software | None:
        return self._software.get(software_id.strip().upper())


# --- loading -------------------------------------------------------------------------------

_memory_cache: dict[str, AttackKnowledge] = {}


def cache_dir() -> Path:
    """`$CATALOG_CACHE_DIR`, else `$XDG_CACHE_HOME/sigma-catalog` (`~/.cache/sigma-catalog`)."""
    configured = os.environ.get("CATALOG_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "sigma-catalog"


def clear_memory_cache() -> None:
    _memory_cache.clear()


def load_knowledge(source: str | Path | None = None, *, use_cache: bool = True) -> AttackKnowledge:
    """ATT&CK from the shipped snapshot (`None`), a STIX bundle (.json, .json.xz, .json.gz) or a cti dir.

    Never touches the network. With `use_cache=False` both caches are bypassed (and not written).
    Raises `AttackDataError` when the source is missing or attackcti cannot load it.
    """
    path = SNAPSHOT if source is None else Path(source).expanduser()
    if not path.exists():
        raise AttackDataError(f"ATT&CK data not found: {path}")
    digest = source_digest(path)
    if use_cache:
        cached = _memory_cache.get(digest) or _read_disk_cache(digest)
        if cached is not None:
            _memory_cache[digest] = cached
            return cached
    knowledge = _load_with_attackcti(path, digest)
    if use_cache:
        _memory_cache[digest] = knowledge
        _write_disk_cache(knowledge)
    return knowledge


def source_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a directory's JSON files (relative names and bytes)."""
    sha = hashlib.sha256()
    if path.is_dir():
        for item in sorted(path.rglob("*.json")):
            sha.update(item.relative_to(path).as_posix().encode() + b"\0")
            sha.update(item.read_bytes())
    else:
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                sha.update(chunk)
    return sha.hexdigest()


def enterprise_dir(path: Path) -> Path:
    """A mitre/cti checkout holds several domains; only `enterprise-attack/` is ours."""
    inner = path / "enterprise-attack"
    return inner if inner.is_dir() else path


def open_bundle_bytes(path: Path) -> bytes:
    """The JSON bytes of a bundle file, decompressing .xz / .gz by name."""
    name = path.name.lower()
    try:
        if name.endswith(".xz"):
            return lzma.decompress(path.read_bytes())
        if name.endswith(".gz"):
            return gzip.decompress(path.read_bytes())
        return path.read_bytes()
    except (OSError, lzma.LZMAError, EOFError) as exc:
        raise AttackDataError(f"cannot read {path}: {exc}") from exc


def release_from_name(path: Path) -> str | None:
    """`enterprise-attack-19.1.json.xz`, `ATT&CK-v19.1/…`: the release as the file or folder names it."""
    for part in (path.name, path.parent.name):
        match = re.search(r"(?:^|[-_v])(\d{1,2}\.\d{1,2})(?=\D|$)", part)
        if match:
            return match.group(1)
    return None


def _load_with_attackcti(path: Path, digest: str) -> AttackKnowledge:
    # attackcti's local loader accepts a directory or a file ending in `.json` only, so compressed
    # bundles are unpacked into a temporary directory first.
    with tempfile.TemporaryDirectory(prefix="sigma-catalog-attack-") as tmp:
        if path.is_dir():
            stix_path = enterprise_dir(path)
        elif path.suffix.lower() == ".json":
            stix_path = path
        else:
            stix_path = Path(tmp) / "enterprise-attack.json"
            stix_path.write_bytes(open_bundle_bytes(path))
        try:
            from attackcti import MitreAttackClient

            client = MitreAttackClient.from_local(enterprise=str(stix_path))
            return _extract(client, digest, release_from_name(path))
        except AttackDataError:
            raise
        except Exception as exc:  # attackcti/stix2 raise many kinds; the user needs one line
            raise AttackDataError(f"attackcti cannot load {path}: {type(exc).__name__}: {exc}") from exc


def _get(obj: Any, key: str, default: Any = None) -> Any:
    # python-stix2 objects and the plain dicts stix2 returns for custom types are both Mappings.
    return obj.get(key, default)


def _attack_ref(obj: Any) -> tuple[str, str] | None:
    """(external_id, url) of the object's `mitre-attack` external reference."""
    for ref in _get(obj, "external_references", ()) or ():
        if _get(ref, "source_name") in ("mitre-attack", "mitre-ics-attack", "mitre-mobile-attack"):
            external_id = _get(ref, "external_id")
            if external_id:
                return str(external_id).upper(), str(_get(ref, "url") or "")
    return None


def _page_url(url: str, kind: str, external_id: str) -> str:
    """attack.mitre.org pages end in a slash; the STIX urls do not."""
    if not url:
        url = f"https://attack.mitre.org/{kind}/{external_id.replace('.', '/')}"
    return url if url.endswith("/") else url + "/"


def _final_replacements(revoked_by: dict[str, str]) -> dict[str, str]:
    """Follow each revoked-by chain (T1150 -> T1547.011 -> T1647) to its last member."""
    final: dict[str, str] = {}
    for start in revoked_by:
        seen = {start}
        current = revoked_by[start]
        while current in revoked_by and current not in seen:  # `seen` guards against a cycle
            seen.add(current)
            current = revoked_by[current]
        final[start] = current
    return final


def _extract(client: Any, digest: str, name_release: str | None) -> AttackKnowledge:
    from stix2 import Filter

    query = client.query
    data = query.data_source
    tactics = _tactics(query, data.query([Filter("type", "=", "x-mitre-matrix")]))
    # STIX id -> ATT&CK id, for relationships
    external: dict[str, str] = {}
    techniques_stix = query.techniques.get_techniques(skip_revoked_deprecated=False)
    groups_stix = query.groups.get_groups(skip_revoked_deprecated=False)
    software_stix = query.software.get_software(skip_revoked_deprecated=False)
    for obj in (*techniques_stix, *groups_stix, *software_stix):
        attack = _attack_ref(obj)
        if attack is not None:
            external[_get(obj, "id")] = attack[0]

    def relation(kind: str) -> dict[str, str]:
        pairs = query.relationships.get_relationships(relationship_type=kind, skip_revoked_deprecated=False)
        return {
            external[_get(r, "source_ref")]: external[_get(r, "target_ref")]
            for r in pairs
            if _get(r, "source_ref") in external and _get(r, "target_ref") in external
        }

    replaced = _final_replacements(relation("revoked-by"))
    techniques = _techniques(techniques_stix, tactics, relation("subtechnique-of"), replaced)
    groups, software = _groups_and_software(groups_stix, software_stix, replaced)
    collections = data.query([Filter("type", "=", "x-mitre-collection")])
    release = next((str(_get(c, "x_mitre_version")) for c in collections if _get(c, "x_mitre_version")), None)
    release = release or name_release
    if not release:
        log.warning("cannot tell which ATT&CK release this data is (no x-mitre-collection, no version in its name)")
    return AttackKnowledge(
        release=release or "unknown",
        source_hash=digest,
        tactics=tuple(tactics),
        all_techniques=tuple(sorted(techniques, key=lambda t: t.id)),
        all_groups=tuple(sorted(groups, key=lambda g: g.id)),
        all_software=tuple(sorted(software, key=lambda s: s.id)),
    )


def _tactics(query: Any, matrices: list) -> list[Tactic]:
    """The Enterprise matrix's tactics, in its order."""
    matrix = next((m for m in matrices if (_attack_ref(m) or ("",))[0] == "ENTERPRISE-ATTACK"), None)
    if matrix is None and matrices:
        matrix = matrices[0]
    tactic_objects = {_get(t, "id"): t for t in query.tactics.get_tactics()}
    if matrix is not None:
        order = [ref for ref in _get(matrix, "tactic_refs", ()) if ref in tactic_objects]
    else:  # no matrix: fall back to id order rather than fail
        log.warning("ATT&CK data has no x-mitre-matrix; tactics are shown in id order")
        order = sorted(tactic_objects, key=lambda ref: (_attack_ref(tactic_objects[ref]) or ("",))[0])
    tactics: list[Tactic] = []
    for ref in order:
        obj = tactic_objects[ref]
        attack = _attack_ref(obj)
        if attack is None:
            continue
        tactics.append(
            Tactic(attack[0], str(_get(obj, "x_mitre_shortname")), str(_get(obj, "name")), _page_url(attack[1], "tactics", attack[0]))
        )
    return tactics


def _techniques(techniques_stix: list, tactics: list[Tactic], parents: dict[str, str], replaced: dict[str, str]) -> list[Technique]:
    tactic_rank = {t.shortname: index for index, t in enumerate(tactics)}
    techniques: list[Technique] = []
    for obj in techniques_stix:
        attack = _attack_ref(obj)
        if attack is None:
            continue
        technique_id = attack[0]
        phases = {
            str(_get(phase, "phase_name"))
            for phase in _get(obj, "kill_chain_phases", ()) or ()
            if str(_get(phase, "kill_chain_name", "")).startswith("mitre")
        }
        parent = parents.get(technique_id)
        if parent is None and "." in technique_id:
            parent = technique_id.split(".")[0]
        revoked = bool(_get(obj, "revoked", False))
        techniques.append(
            Technique(
                id=technique_id,
                name=str(_get(obj, "name", "")),
                url=_page_url(attack[1], "techniques", technique_id),
                tactics=tuple(sorted((p for p in phases if p in tactic_rank), key=tactic_rank.__getitem__)),
                parent=parent,
                revoked=revoked,
                revoked_by=replaced.get(technique_id) if revoked else None,
                deprecated=bool(_get(obj, "x_mitre_deprecated", False)),
                description=short_description(_get(obj, "description", "")),
            )
        )
    return techniques


def _groups_and_software(groups_stix: list, software_stix: list, replaced: dict[str, str]) -> tuple[list[Group], list[Software]]:
    groups: list[Group] = []
    for obj in groups_stix:
        attack = _attack_ref(obj)
        if attack is None:
            continue
        name = str(_get(obj, "name", ""))
        aliases = tuple(a for a in _get(obj, "aliases", ()) or () if a != name)
        groups.append(
            Group(attack[0], name, _page_url(attack[1], "groups", attack[0]), aliases,
                  replaced.get(attack[0]) if _get(obj, "revoked", False) else None,
                  bool(_get(obj, "x_mitre_deprecated", False)))
        )
    software: list[Software] = []
    for obj in software_stix:
        attack = _attack_ref(obj)
        if attack is None:
            continue
        software.append(
            Software(attack[0], str(_get(obj, "name", "")), _page_url(attack[1], "software", attack[0]), str(_get(obj, "type")),
                     replaced.get(attack[0]) if _get(obj, "revoked", False) else None,
                     bool(_get(obj, "x_mitre_deprecated", False)))
        )
    return groups, software


# --- disk cache: plain JSON of the extracted objects (no pickle: safe to read, easy to discard) ----


def _cache_file(digest: str) -> Path:
    return cache_dir() / "attack" / f"{digest}.v{CACHE_FORMAT}.json"


def _rows(items: Iterable[Any]) -> list[list[Any]]:
    return [[getattr(item, name) for name in item.__slots__] for item in items]


def _write_disk_cache(knowledge: AttackKnowledge) -> None:
    target = _cache_file(knowledge.source_hash)
    payload = {
        "format": CACHE_FORMAT,
        "source_hash": knowledge.source_hash,
        "release": knowledge.release,
        "tactics": _rows(knowledge.tactics),
        "techniques": _rows(knowledge.all_techniques),
        "groups": _rows(knowledge.all_groups),
        "software": _rows(knowledge.all_software),
    }
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # write aside then rename, so a concurrent build never reads half a file
        with tempfile.NamedTemporaryFile("w", dir=target.parent, suffix=".tmp", delete=False, encoding="utf-8") as out:
            json.dump(payload, out, separators=(",", ":"))
        os.replace(out.name, target)
    except OSError as exc:  # a read-only home must not break a build
        log.debug("cannot write ATT&CK cache %s: %s", target, exc)


def _read_disk_cache(digest: str) -> AttackKnowledge | None:
    target = _cache_file(digest)
    if not target.is_file():
        return None
    try:
        payload = json.loads(target.read_text(encoding="utf-8"))
        if payload["format"] != CACHE_FORMAT or payload["source_hash"] != digest:
            raise ValueError("cache written for other data")
        return AttackKnowledge(
            release=str(payload["release"]),
            source_hash=digest,
            tactics=tuple(Tactic(*row) for row in payload["tactics"]),
            all_techniques=tuple(
                Technique(i, n, u, tuple(tactics), p, bool(r), rb, bool(d), str(text))
                for i, n, u, tactics, p, r, rb, d, text in payload["techniques"]
            ),
            all_groups=tuple(Group(i, n, u, tuple(a), rb, bool(d)) for i, n, u, a, rb, d in payload["groups"]),
            all_software=tuple(Software(*row) for row in payload["software"]),
        )
    except Exception as exc:  # corrupt or foreign cache: ignore it, the caller rebuilds and rewrites it
        log.debug("ignoring unreadable ATT&CK cache %s: %s", target, exc)
        return None


def copy_license(target_dir: Path) -> None:
    """Put MITRE's license next to a copy of ATT&CK data (required by its terms)."""
    source = DATA_DIR / "LICENSE-ATTACK.txt"
    target = target_dir / source.name
    if not source.is_file() or source.resolve() == target.resolve():
        return
    text = source.read_bytes()
    if not target.is_file() or target.read_bytes() != text:
        target.write_bytes(text)
