"""Make the trimmed ATT&CK snapshot shipped with the catalog, from a local bundle or from the network.

A full Enterprise bundle is ~47 MB of JSON and takes attackcti about 10 s to parse; a rule page needs
only names, ids, urls, tactics and revocations. The snapshot keeps exactly that as a valid STIX
bundle (attackcti still loads it), written deterministically so regenerating it from the same input
gives the same bytes.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import socket
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.attack.description import short_description
from catalog.attack.knowledge import (
    SNAPSHOT,
    AttackDataError,
    copy_license,
    enterprise_dir,
    load_knowledge,
    open_bundle_bytes,
    release_from_name,
)
from catalog.problems import one_line

KEPT_TYPES = frozenset({"attack-pattern", "x-mitre-tactic", "x-mitre-matrix", "intrusion-set", "malware", "tool"})
KEPT_RELATIONSHIPS = frozenset({"revoked-by", "subtechnique-of"})
#: Properties kept: what the catalog reads, plus what STIX requires for the bundle to stay valid
#: (labels for 2.0 malware/tool, is_family for 2.1 malware, definition for markings, ...).
KEPT_PROPERTIES = frozenset({
    "type", "id", "spec_version", "created", "modified", "created_by_ref", "object_marking_refs",
    "name", "external_references", "kill_chain_phases", "revoked", "x_mitre_deprecated",
    "x_mitre_is_subtechnique", "x_mitre_version", "x_mitre_attack_spec_version", "aliases",
    "x_mitre_shortname", "tactic_refs", "relationship_type", "source_ref", "target_ref",
    "labels", "is_family", "identity_class", "definition", "definition_type",
})
#: Fixed namespace for the ids this module has to invent (bundle, recorded release).
_NAMESPACE = uuid.UUID("5b0b3a4e-8f0c-5d55-9c1e-6a1f4f2f6d1a")
_STIX_DATA_INDEX = "https://raw.githubusercontent.com/mitre-attack/attack-stix-data/master/index.json"
NETWORK_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    path: Path
    release: str
    objects: int
    size: int  # bytes on disk


def make_snapshot(source: str | Path, output: str | Path = SNAPSHOT, *, release: str | None = None) -> SnapshotInfo:
    """Trim a bundle (.json/.json.xz/.json.gz) or a cti directory into `output` (.json.xz, .json.gz or .json).

    The release comes from the data's x-mitre-collection, else `release`, else the source's name
    (`enterprise-attack-19.1.json.xz`); it is recorded in the snapshot as an x-mitre-collection.
    The new file is loaded through attackcti before it replaces `output`. A NOTICE and MITRE's
    license are written next to it, as ATT&CK's terms require for any copy.
    """
    source, output = Path(source).expanduser(), Path(output).expanduser()
    if not source.exists():
        raise AttackDataError(f"no such bundle or directory: {source}")
    objects, spec_version = _read_objects(source)
    matrix = _enterprise_matrix(objects)
    collection = next((o for o in objects if o.get("type") == "x-mitre-collection"), None)

    data_release = str(collection["x_mitre_version"]) if collection and collection.get("x_mitre_version") else None
    if data_release and release and data_release != release:
        raise AttackDataError(f"{source} is ATT&CK v{data_release}, not v{release}")
    release = data_release or release or release_from_name(source)
    if not release:
        raise AttackDataError(f"cannot tell which ATT&CK release {source} is; pass --release")

    kept = _kept_objects(objects, matrix, collection, release, spec_version)
    bundle: dict[str, Any] = {
        "type": "bundle",
        # named after the release only, so snapshotting a snapshot gives the same bytes
        "id": f"bundle--{uuid.uuid5(_NAMESPACE, f'enterprise-attack {release} trimmed by sigma-catalog')}",
        "objects": kept,
    }
    if spec_version == "2.0":  # STIX 2.0 bundles carry it; 2.1 bundles must not
        bundle["spec_version"] = "2.0"
    text = json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    payload = _compress(text.encode("utf-8"), output.name)

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.{os.getpid()}.tmp{''.join(output.suffixes)}"
    try:
        staging.write_bytes(payload)
        check = load_knowledge(staging, use_cache=False)  # proves attackcti accepts it
        if not check.tactics or not check.all_techniques:
            raise AttackDataError(f"{source} holds no Enterprise tactics or techniques")
        os.replace(staging, output)
    finally:
        staging.unlink(missing_ok=True)
    (output.parent / "NOTICE").write_text(_notice(release, objects, matrix), encoding="utf-8")
    copy_license(output.parent)
    return SnapshotInfo(output, release, len(kept), len(payload))


def _kept_objects(objects: list[dict[str, Any]], matrix: dict[str, Any] | None, collection: dict[str, Any] | None,
                  release: str, spec_version: str) -> list[dict[str, Any]]:
    """The trimmed objects of the snapshot, in a stable order."""
    objects_by_id = {o["id"]: o for o in objects}
    kept = [
        _trim(o)
        for o in objects
        if (o.get("type") in KEPT_TYPES and o.get("type") != "x-mitre-matrix")
        or (o.get("type") == "relationship" and o.get("relationship_type") in KEPT_RELATIONSHIPS)
    ]
    if matrix is not None:
        kept.append(_trim(matrix))
    kept_ids = {o["id"] for o in kept}
    # relationships whose ends were dropped (e.g. revoked-by between campaigns) would dangle
    kept = [o for o in kept if o["type"] != "relationship" or (o["source_ref"] in kept_ids and o["target_ref"] in kept_ids)]
    kept.append(_trim(collection) if collection else _recorded_release(release, matrix, spec_version))
    # the identity and marking definitions the kept objects point at
    referenced = {ref for o in kept for ref in (o.get("created_by_ref"), *o.get("object_marking_refs", ())) if ref}
    for ref in sorted(referenced):
        if ref in objects_by_id and ref not in kept_ids:
            kept.append(_trim(objects_by_id[ref]))
    kept.sort(key=lambda o: (o["type"], o["id"]))
    return kept


def update_snapshot(release: str | None = None, output: str | Path = SNAPSHOT) -> SnapshotInfo:
    """Download a release (default: latest) with attackcti's `from_attack_stix_data`, then snapshot it.

    Fails fast with `AttackDataError` when offline: a reachability check with a short timeout
    comes first, and every socket gets a default timeout so nothing hangs.
    """
    import requests  # attackcti's own HTTP client; honours HTTPS_PROXY like its download does
    from attackcti import MitreAttackClient

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(NETWORK_TIMEOUT)
    try:
        with tempfile.TemporaryDirectory(prefix="sigma-catalog-attack-") as tmp:
            try:
                requests.head(_STIX_DATA_INDEX, timeout=NETWORK_TIMEOUT).raise_for_status()
                MitreAttackClient.from_attack_stix_data(
                    download_dir=tmp, release=release, domains=("enterprise",), force_download=True
                )
            except (requests.RequestException, OSError) as exc:
                raise AttackDataError(f"cannot download ATT&CK data (offline?): {one_line(exc)}") from exc
            except ValueError as exc:  # attackcti: release not published
                raise AttackDataError(one_line(exc)) from exc
            downloaded = sorted(Path(tmp).rglob("enterprise-attack.json"))
            if not downloaded:
                raise AttackDataError("attackcti downloaded no enterprise-attack.json")
            return make_snapshot(downloaded[0], output, release=release)
    finally:
        socket.setdefaulttimeout(previous)


def _read_objects(source: Path) -> tuple[list[dict[str, Any]], str]:
    """All STIX objects of a bundle file or a directory of JSON files, and their STIX spec version."""
    if source.is_dir():
        files = sorted(enterprise_dir(source).rglob("*.json"))
        payloads = [_parse(f.read_bytes(), f) for f in files]
    else:
        payloads = [_parse(open_bundle_bytes(source), source)]
    objects: dict[str, dict[str, Any]] = {}
    spec_version = None
    for payload in payloads:
        if payload.get("type") == "bundle":
            spec_version = spec_version or payload.get("spec_version")
            items = payload.get("objects") or []
        else:
            items = [payload]
        for item in items:
            if isinstance(item, dict) and "id" in item and "type" in item:
                # one-object-per-file trees may repeat an object: keep its latest version
                known = objects.get(item["id"])
                if known is None or str(item.get("modified", "")) >= str(known.get("modified", "")):
                    objects[item["id"]] = item
    if not objects:
        raise AttackDataError(f"{source} holds no STIX objects")
    if spec_version is None:
        spec_version = "2.1" if any("spec_version" in o for o in objects.values()) else "2.0"
    return list(objects.values()), str(spec_version)


def _parse(data: bytes, origin: Path) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise AttackDataError(f"{origin} is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise AttackDataError(f"{origin} is not a STIX bundle or object")
    return payload


def _enterprise_matrix(objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    matrices = [o for o in objects if o.get("type") == "x-mitre-matrix"]
    for matrix in matrices:
        if any(r.get("external_id") == "enterprise-attack" for r in matrix.get("external_references", ())):
            return matrix
    return matrices[0] if matrices else None


def _trim(obj: dict[str, Any]) -> dict[str, Any]:
    trimmed = {key: value for key, value in obj.items() if key in KEPT_PROPERTIES}
    if "external_references" in obj:  # only ATT&CK's own id and page, not the citations
        trimmed["external_references"] = [
            {key: ref[key] for key in ("source_name", "external_id", "url") if key in ref}
            for ref in obj["external_references"]
            if str(ref.get("source_name", "")).startswith("mitre-")
        ]
    if obj.get("type") == "attack-pattern" and obj.get("description"):  # technique pages show it, shortened
        trimmed["description"] = short_description(obj["description"])
    return trimmed


def _recorded_release(release: str, matrix: dict[str, Any] | None, spec_version: str) -> dict[str, Any]:
    """An x-mitre-collection naming the release, for sources that have none (mitre/cti bundles)."""
    stamp = (matrix or {}).get("modified", "1970-01-01T00:00:00.000Z")
    collection: dict[str, Any] = {
        "type": "x-mitre-collection",
        "id": f"x-mitre-collection--{uuid.uuid5(_NAMESPACE, f'enterprise-attack {release}')}",
        "created": stamp,
        "modified": stamp,
        "name": "Enterprise ATT&CK",
        "x_mitre_version": release,
    }
    for key in ("created_by_ref", "object_marking_refs"):
        if matrix and key in matrix:
            collection[key] = matrix[key]
    if spec_version != "2.0":
        collection["spec_version"] = spec_version
    return collection


def _compress(data: bytes, name: str) -> bytes:
    if name.endswith(".xz"):
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6)
    if name.endswith(".gz"):
        return gzip.compress(data, compresslevel=9, mtime=0)  # mtime=0: no timestamp in the header
    return data


def _notice(release: str, objects: list[dict[str, Any]], matrix: dict[str, Any] | None) -> str:
    statements = sorted({
        o["definition"]["statement"]
        for o in objects
        if o.get("type") == "marking-definition" and isinstance(o.get("definition"), dict) and "statement" in o["definition"]
    })
    year = str((matrix or {}).get("modified", ""))[:4] or "2026"
    lines = [
        f"The ATT&CK snapshot in this directory is derived from MITRE ATT&CK Enterprise v{release},",
        "trimmed by `catalog attack snapshot` (names, ids, links, tactics and revocations only).",
        "",
        f"\u00a9 {year} The MITRE Corporation. This work is reproduced and distributed with the permission of The MITRE Corporation.",
        *statements,
        "",
        "Use is subject to the license in LICENSE-ATTACK.txt (https://attack.mitre.org/resources/legal-and-branding/terms-of-use/).",
    ]
    return "\n".join(lines) + "\n"
