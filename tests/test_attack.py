"""ATT&CK knowledge (catalog.attack): loading through attackcti, caching, snapshots, tag mapping."""

from __future__ import annotations

import argparse
import json
import lzma
import socket
from collections import Counter
from pathlib import Path

import pytest
import yaml

from catalog.attack import (
    SNAPSHOT,
    AttackDataError,
    AttackKnowledge,
    AttackMapping,
    load_knowledge,
    make_snapshot,
    map_tags,
)
from catalog.attack import knowledge as knowledge_module
from catalog.attack.commands import register
from catalog.attack.knowledge import normalize_tactic_name

from conftest import CORPUS, SHARED, needs_corpus

BUNDLE_19 = SHARED / "attack" / "enterprise-attack-19.1.json.xz"
BUNDLE_18 = SHARED / "attack" / "enterprise-attack-18.1.json.xz"

needs_bundles = pytest.mark.skipif(not BUNDLE_18.is_file() or not BUNDLE_19.is_file(), reason="needs ../shared/attack bundles")


# --- fixtures --------------------------------------------------------------------------------


def refuse_network(patch) -> list[tuple]:
    """Make every way to open a connection fail (and record the attempt)."""
    attempts: list[tuple] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise socket.gaierror(socket.EAI_NONAME, "network disabled by the test")

    patch.setattr(socket.socket, "connect", refuse)
    patch.setattr(socket.socket, "connect_ex", refuse)
    patch.setattr(socket, "create_connection", refuse)
    patch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.fixture(scope="module")
def kb(tmp_path_factory) -> AttackKnowledge:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CATALOG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return load_knowledge()


@pytest.fixture(scope="module")
def kb18_full(tmp_path_factory) -> tuple[AttackKnowledge, list[tuple]]:
    """The full v18.1 bundle (not a snapshot) loaded with the network refused and an empty cache."""
    if not BUNDLE_18.is_file():
        pytest.skip("needs ../shared/attack/enterprise-attack-18.1.json.xz")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CATALOG_CACHE_DIR", str(tmp_path_factory.mktemp("cache18")))
        attempts = refuse_network(patch)
        return load_knowledge(BUNDLE_18), attempts


@pytest.fixture(scope="module")
def corpus_tags() -> list[tuple[Path, list[str]]]:
    """Every rule file's tags, read with a plain safe YAML load (all documents of a file)."""
    if not CORPUS.is_dir():
        pytest.skip("needs ../shared/corpora/sigmahq")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found = []
    for path in sorted(CORPUS.rglob("*.yml")):
        documents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader))
        found.append((path, [str(t) for d in documents if isinstance(d, dict) for t in d.get("tags") or []]))
    return found


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="catalog")
    register(parser.add_subparsers(dest="command", required=True))
    arguments = parser.parse_args(["attack", *argv])
    return arguments.handler(arguments)


def snapshot_objects() -> dict:
    return json.loads(lzma.decompress(SNAPSHOT.read_bytes()))


def as_stix21(bundle: dict, *, with_collection: bool = True) -> dict:
    """The shipped snapshot rewritten the way attack-stix-data publishes it (STIX 2.1, x-mitre-collection)."""
    objects = []
    for obj in bundle["objects"]:
        if obj["type"] == "x-mitre-collection":
            continue
        obj = {**obj, "spec_version": "2.1"}
        if obj["type"] == "malware":
            obj["is_family"] = True
        objects.append(obj)
    if with_collection:
        objects.append({
            "type": "x-mitre-collection", "id": "x-mitre-collection--1f5f1533-f617-4ca8-9ab4-6a02367fa019",
            "spec_version": "2.1", "created": "2018-01-17T12:56:55.080Z", "modified": "2026-04-14T22:56:22.555Z",
            "name": "Enterprise ATT&CK", "x_mitre_version": "19.1", "description": "long text",
            "x_mitre_contents": [{"object_ref": o["id"], "object_modified": o.get("modified")} for o in objects],
        })
    return {"type": "bundle", "id": "bundle--0b0b0b0b-0000-4000-8000-000000000000", "objects": objects}


def accounted(tags: list[str], mapping: AttackMapping) -> list[str]:
    """The attack.* tags that ended up nowhere in the mapping (should be none)."""
    placed = {tag.lower() for row in mapping.rows for m in row.techniques for tag in (m.tag, *m.also_tags)}
    tactics = {row.tactic.shortname for row in mapping.rows} | {row.tactic.id.lower() for row in mapping.rows}
    ids = {*mapping.unknown_techniques, *(g.id for g in mapping.groups), *(s.id for s in mapping.software)}
    other = {t.lower() for t in mapping.other_tags}
    missing = []
    for tag in tags:
        key = tag.strip().lower()
        rest = key[len("attack."):]
        if not key.startswith("attack.") or key in placed or key in other or rest.upper() in ids:
            continue
        if normalize_tactic_name(rest) in tactics:
            continue
        missing.append(tag)
    return missing


# --- knowledge -------------------------------------------------------------------------------


def test_shipped_snapshot_is_v19_1_in_matrix_order(kb):
    assert kb.release == "19.1"
    assert kb.label == "ATT&CK Enterprise v19.1"
    assert [t.shortname for t in kb.tactics][:8] == [
        "reconnaissance", "resource-development", "initial-access", "execution",
        "persistence", "privilege-escalation", "stealth", "defense-impairment",
    ]
    assert len(kb.tactics) == 15 and kb.tactics[-1].shortname == "impact"
    assert kb.tactic("TA0112").name == "Defense Impairment"
    assert kb.tactic_by_shortname("Command_and_Control").id == "TA0011"
    assert len(kb.all_techniques) == 858
    assert sum(t.revoked for t in kb.all_techniques) == 149
    assert sum(t.deprecated for t in kb.all_techniques) == 12
    sub = kb.technique("t1059.001")
    assert (sub.name, sub.parent, sub.tactics, sub.url) == (
        "PowerShell", "T1059", ("execution",), "https://attack.mitre.org/techniques/T1059/001/")


def test_snapshot_is_small_and_carries_the_license():
    assert SNAPSHOT.stat().st_size < 2_000_000
    data_dir = SNAPSHOT.parent
    assert (data_dir / "LICENSE-ATTACK.txt").read_text(encoding="utf-8").startswith("ATT&CK")
    notice = (data_dir / "NOTICE").read_text(encoding="utf-8")
    assert "v19.1" in notice and "The MITRE Corporation" in notice and "LICENSE-ATTACK.txt" in notice


def test_revocation_chain_is_followed_to_the_end(kb):
    assert kb.technique("T1150").revoked_by == "T1647"
    assert kb.technique("T1547.011").revoked_by == "T1647"
    assert kb.current_technique("T1150").id == "T1647"
    mapping = map_tags(["attack.t1150"], kb)
    (mapped,) = mapping.techniques
    assert (mapped.technique.id, mapped.replaced, mapped.tag) == ("T1647", "T1150", "attack.t1150")
    (finding,) = [f for f in mapping.findings if f.code == "revoked-technique"]
    assert "T1647" in finding.message and "v19.1" in finding.message


def test_groups_and_software(kb):
    mapping = map_tags(["attack.g0032", "attack.S0002", "attack.g9999", "attack.s9999"], kb)
    assert [(g.id, g.name, g.url) for g in mapping.groups] == [("G0032", "Lazarus Group", "https://attack.mitre.org/groups/G0032/")]
    assert "HIDDEN COBRA" in mapping.groups[0].aliases
    assert [(s.id, s.name, s.type) for s in mapping.software] == [("S0002", "Mimikatz", "tool")]
    assert mapping.other_tags == ("attack.g9999", "attack.s9999")
    assert [(f.code, f.severity) for f in mapping.findings] == [("unknown-group", "warning"), ("unknown-software", "warning")]
    assert mapping.findings[0].message == "G9999 is not a group in ATT&CK Enterprise v19.1"


# --- mapping ---------------------------------------------------------------------------------


def test_reference_execution_wmi(kb):
    mapping = map_tags(["attack.execution", "attack.t1047"], kb)
    (row,) = mapping.rows
    (mapped,) = row.techniques
    assert row.tactic.name == "Execution"
    assert f"{mapped.technique.id} {mapped.technique.name}" == "T1047 Windows Management Instrumentation"
    assert mapped.technique.url == "https://attack.mitre.org/techniques/T1047/"
    assert not mapped.derived and mapped.replaced is None and not mapped.deprecated
    assert mapping.findings == () and mapping.other_tags == () and mapping.release == "19.1"


def test_underscored_and_cased_tactics(kb):
    mapping = map_tags(["attack.command_and_control", "attack.T1071.001", "attack.Initial_Access"], kb)
    assert [r.tactic.shortname for r in mapping.rows] == ["initial-access", "command-and-control"]
    assert mapping.rows[0].techniques == ()  # a tactic tag without technique still has its row
    (mapped,) = mapping.rows[1].techniques
    assert (mapped.technique.id, mapped.derived) == ("T1071.001", False)
    assert mapping.findings == ()


def test_technique_is_listed_under_tagged_tactics_only(kb):
    # T1543.003 is persistence and privilege-escalation; the rule tags persistence only
    mapping = map_tags(["attack.persistence", "attack.t1543.003"], kb)
    assert [(r.tactic.shortname, [m.technique.id for m in r.techniques]) for r in mapping.rows] == [
        ("persistence", ["T1543.003"])]


def test_technique_without_its_tactic_is_derived(kb):
    mapping = map_tags(["attack.execution", "attack.t1543.003"], kb)
    assert [(r.tactic.shortname, [(m.technique.id, m.derived) for m in r.techniques]) for r in mapping.rows] == [
        ("execution", []),
        ("persistence", [("T1543.003", True)]),
        ("privilege-escalation", [("T1543.003", True)]),
    ]
    assert len(mapping.techniques) == 1
    (finding,) = mapping.findings
    assert (finding.code, finding.severity, finding.tag) == ("technique-tactic-not-tagged", "warning", "attack.t1543.003")
    assert finding.message.endswith("add attack.persistence or attack.privilege-escalation")


def test_revoked_and_its_replacement_both_written(kb):
    """The technique is listed once, under the tag written directly, noting the revoked tag."""
    for tags in (["attack.execution", "attack.t1059.001", "attack.t1086"], ["attack.execution", "attack.t1086", "attack.t1059.001"]):
        mapping = map_tags(tags, kb)
        (row,) = mapping.rows
        assert [(m.technique.id, m.tag, m.replaced, m.also_tags) for m in row.techniques] == [
            ("T1059.001", "attack.t1059.001", None, ("attack.t1086",))]
        assert len(mapping.techniques) == 1


def test_deprecated_is_kept_and_flagged(kb):
    mapping = map_tags(["attack.command-and-control", "attack.t1043"], kb)
    (mapped,) = mapping.techniques
    assert (mapped.technique.id, mapped.deprecated) == ("T1043", True)
    assert [f.code for f in mapping.findings] == ["deprecated-technique"]


def test_unknown_technique_is_kept_and_names_the_release(kb):
    mapping = map_tags(["attack.execution", "attack.t9999", "attack.T9999.001"], kb)
    assert mapping.unknown_techniques == ("T9999", "T9999.001")
    assert [f.message for f in mapping.findings] == [
        "T9999 is not in ATT&CK Enterprise v19.1", "T9999.001 is not in ATT&CK Enterprise v19.1"]
    assert all(f.severity == "warning" and f.code == "unknown-technique" for f in mapping.findings)


def test_malformed_and_other_attack_tags(kb):
    tags = ["attack.1562.001", "attack.", "attack.t12", "attack.ds0005", "attack.c0001", "cve.2021-44228", "car.2013-05-004"]
    mapping = map_tags(tags, kb)
    assert mapping.other_tags == ("attack.1562.001", "attack.", "attack.t12", "attack.ds0005", "attack.c0001")
    assert [(f.tag, f.code) for f in mapping.findings] == [
        ("attack.1562.001", "malformed-tag"), ("attack.", "malformed-tag"), ("attack.t12", "malformed-tag")]
    assert "attack.t1562.001" in mapping.findings[0].message
    assert mapping.rows == () and mapping.unknown_techniques == ()


def test_unknown_tactic_is_kept(kb):
    mapping = map_tags(["attack.defense_evasion", "attack.t1027"], kb)
    assert mapping.other_tags == ("attack.defense_evasion",)
    codes = {f.code: f for f in mapping.findings}
    assert "defense-evasion is not a tactic in ATT&CK Enterprise v19.1" in codes["unknown-tactic"].message
    assert [r.tactic.shortname for r in mapping.rows] == ["stealth"]  # T1027's own tactic, derived
    assert mapping.rows[0].techniques[0].derived


# --- corpus ----------------------------------------------------------------------------------


def corpus_counts(corpus_tags, kb) -> tuple[Counter, list[AttackMapping]]:
    counts: Counter = Counter()
    mappings = []
    for path, tags in corpus_tags:
        mapping = map_tags(tags, kb)
        mappings.append(mapping)
        assert accounted(tags, mapping) == [], path
        counts["attack tags"] += sum(t.lower().startswith("attack.") for t in tags)
        counts["resolved techniques"] += len(mapping.techniques)
        counts["revoked->replaced"] += sum(m.replaced is not None for m in mapping.techniques)
        counts["deprecated"] += sum(m.deprecated for m in mapping.techniques)
        counts["derived"] += sum(m.derived for m in mapping.techniques)
        counts["unknown techniques"] += len(mapping.unknown_techniques)
        counts["tactic rows"] += len(mapping.rows)
        counts["groups"] += len(mapping.groups)
        counts["software"] += len(mapping.software)
        counts["other tags"] += len(mapping.other_tags)
        counts["unknown tactics"] += sum(f.code == "unknown-tactic" for f in mapping.findings)
    print(f"\n{kb.label}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts, mappings


@needs_corpus
def test_corpus_resolves_against_v19_1(kb, corpus_tags):
    counts, mappings = corpus_counts(corpus_tags, kb)
    assert len(corpus_tags) == 4039 and counts["attack tags"] == 11517
    assert counts["unknown techniques"] == 0  # every technique tag exists in v19.1
    # a revoked id resolves to its replacement; next to the replacement's own tag it is noted in also_tags
    replaced = {(m.replaced, m.technique.id) for mp in mappings for m in mp.techniques if m.replaced}
    replaced |= {(tag.upper().removeprefix("ATTACK."), m.technique.id) for mp in mappings for m in mp.techniques for tag in m.also_tags}
    assert {("T1086", "T1059.001"), ("T1050", "T1543.003"), ("T1562.001", "T1685")} <= replaced
    # the only tactic tags v19.1 lacks are the retired defense-evasion ones
    unknown_tactics = {f.tag.lower() for mp in mappings for f in mp.findings if f.code == "unknown-tactic"}
    assert unknown_tactics == {"attack.defense_evasion", "attack.defense-evasion"}
    assert counts["groups"] == 68 and counts["software"] == 88


@needs_corpus
def test_corpus_against_v18_1_reports_v19_ids(kb18_full, corpus_tags):
    kb18, _ = kb18_full
    assert kb18.release == "18.1" and len(kb18.tactics) == 14
    assert kb18.tactic_by_shortname("defense-evasion").id == "TA0005"
    counts, mappings = corpus_counts(corpus_tags, kb18)
    findings = [f for mp in mappings for f in mp.findings]
    assert counts["unknown techniques"] > 0
    assert "T1685 is not in ATT&CK Enterprise v18.1" in {f.message for f in findings}
    unknown_tactics = {f.message for f in findings if f.code == "unknown-tactic"}
    assert {"stealth is not a tactic in ATT&CK Enterprise v18.1",
            "defense-impairment is not a tactic in ATT&CK Enterprise v18.1"} <= unknown_tactics
    assert all(f.severity == "warning" for f in findings if f.code in ("unknown-technique", "unknown-tactic"))


# --- loading: no network, caches ---------------------------------------------------------------


@needs_bundles
def test_loading_never_touches_the_network(kb18_full, tmp_path, monkeypatch):
    kb18, attempts_full_bundle = kb18_full  # the full bundle was loaded with the network refused
    assert kb18.technique("T1562.001").name == "Disable or Modify Tools" and attempts_full_bundle == []
    monkeypatch.setenv("CATALOG_CACHE_DIR", str(tmp_path / "empty"))
    attempts = refuse_network(monkeypatch)
    knowledge_module.clear_memory_cache()
    assert load_knowledge(None).release == "19.1"
    assert attempts == []


def test_disk_cache_is_used_and_a_corrupt_one_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("CATALOG_CACHE_DIR", str(tmp_path))
    knowledge_module.clear_memory_cache()
    first = load_knowledge()
    (cache_file,) = (tmp_path / "attack").glob("*.json")
    assert cache_file.name.startswith(first.source_hash)

    knowledge_module.clear_memory_cache()
    monkeypatch.setattr(knowledge_module, "_load_with_attackcti", lambda *a: pytest.fail("disk cache not used"))
    assert load_knowledge() == first  # from the JSON cache, no STIX parsing
    assert load_knowledge() is load_knowledge()  # then from memory
    monkeypatch.undo()

    monkeypatch.setenv("CATALOG_CACHE_DIR", str(tmp_path))
    cache_file.write_text('{"format": 1, "techniques": [', encoding="utf-8")
    knowledge_module.clear_memory_cache()
    assert load_knowledge() == first
    assert json.loads(cache_file.read_text(encoding="utf-8"))["release"] == "19.1"  # rewritten


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(AttackDataError, match="not found"):
        load_knowledge(tmp_path / "nope.json")
    (tmp_path / "broken.json.xz").write_bytes(b"not xz")
    with pytest.raises(AttackDataError, match="broken.json.xz"):
        load_knowledge(tmp_path / "broken.json.xz")


# --- snapshot and update commands ------------------------------------------------------------


@needs_bundles
def test_snapshot_command_reproduces_the_shipped_snapshot(tmp_path, capsys):
    output = tmp_path / "enterprise-attack.json.xz"
    assert run_cli("snapshot", str(BUNDLE_19), "--output", str(output)) == 0
    assert output.read_bytes() == SNAPSHOT.read_bytes()
    assert (tmp_path / "NOTICE").read_bytes() == (SNAPSHOT.parent / "NOTICE").read_bytes()
    assert (tmp_path / "LICENSE-ATTACK.txt").is_file()
    assert "v19.1" in capsys.readouterr().out


def test_snapshot_of_the_snapshot_and_of_a_cti_directory_are_identical(tmp_path):
    again = make_snapshot(SNAPSHOT, tmp_path / "a" / "enterprise-attack.json.xz")
    assert again.path.read_bytes() == SNAPSHOT.read_bytes()
    # mitre/cti layout: one bundle per object under enterprise-attack/<type>/
    bundle = snapshot_objects()
    for obj in bundle["objects"]:
        folder = tmp_path / "cti" / "enterprise-attack" / obj["type"]
        folder.mkdir(parents=True, exist_ok=True)
        single = {"type": "bundle", "id": "bundle--" + obj["id"].split("--")[1], "spec_version": "2.0", "objects": [obj]}
        (folder / f"{obj['id']}.json").write_text(json.dumps(single), encoding="utf-8")
    (tmp_path / "cti" / "mobile-attack").mkdir()
    (tmp_path / "cti" / "mobile-attack" / "x.json").write_text('{"type": "bundle", "objects": []}', encoding="utf-8")
    from_dir = make_snapshot(tmp_path / "cti", tmp_path / "b" / "enterprise-attack.json.xz")
    assert from_dir.path.read_bytes() == SNAPSHOT.read_bytes()


def test_gzip_snapshot_is_deterministic(tmp_path):
    first = make_snapshot(SNAPSHOT, tmp_path / "one" / "attack.json.gz")
    second = make_snapshot(SNAPSHOT, tmp_path / "two" / "attack.json.gz")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert load_knowledge(first.path, use_cache=False).release == "19.1"


def test_stix21_bundle_with_collection(tmp_path, kb):
    source = tmp_path / "enterprise-attack.json"
    source.write_text(json.dumps(as_stix21(snapshot_objects())), encoding="utf-8")
    info = make_snapshot(source, tmp_path / "out" / "enterprise-attack.json.xz")
    assert info.release == "19.1"
    written = json.loads(lzma.decompress(info.path.read_bytes()))
    assert "spec_version" not in written  # a STIX 2.1 bundle has none
    (collection,) = [o for o in written["objects"] if o["type"] == "x-mitre-collection"]
    assert "x_mitre_contents" not in collection and collection["x_mitre_version"] == "19.1"
    loaded = load_knowledge(info.path)
    assert (loaded.tactics, loaded.all_techniques, loaded.all_groups) == (kb.tactics, kb.all_techniques, kb.all_groups)


def test_snapshot_needs_a_release(tmp_path, capsys):
    source = tmp_path / "bundle.json"
    source.write_text(json.dumps(as_stix21(snapshot_objects(), with_collection=False)), encoding="utf-8")
    assert run_cli("snapshot", str(source), "--output", str(tmp_path / "x.json.xz")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --release" in err
    assert run_cli("snapshot", str(source), "--output", str(tmp_path / "x.json.xz"), "--release", "19.1") == 0
    assert load_knowledge(tmp_path / "x.json.xz").release == "19.1"


def test_snapshot_of_a_missing_bundle_fails_in_one_line(tmp_path, capsys):
    assert run_cli("snapshot", str(tmp_path / "missing.json.xz"), "--output", str(tmp_path / "x.json.xz")) == 2
    err = capsys.readouterr().err
    assert err.startswith("catalog attack snapshot: error:") and err.count("\n") == 1 and "Traceback" not in err


def test_update_offline_fails_in_one_line(tmp_path, monkeypatch, capsys):
    attempts = refuse_network(monkeypatch)
    output = tmp_path / "enterprise-attack.json.xz"
    assert run_cli("update", "--output", str(output)) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("catalog attack update: error: cannot download ATT&CK data (offline?)")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert attempts and not output.exists()


def test_update_when_attackcti_download_fails(tmp_path, monkeypatch, capsys):
    import requests
    from attackcti import MitreAttackClient

    class Reachable:
        def raise_for_status(self):
            return None

    def fail(**kwargs):
        raise requests.ConnectionError("Max retries exceeded\nFailed to resolve 'raw.githubusercontent.com'")

    monkeypatch.setattr(requests, "head", lambda *a, **k: Reachable())
    monkeypatch.setattr(MitreAttackClient, "from_attack_stix_data", fail)
    assert run_cli("update", "--release", "19.1", "--output", str(tmp_path / "x.json.xz")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Failed to resolve" in err


def test_update_writes_the_downloaded_release(tmp_path, monkeypatch, capsys):
    import requests
    from attackcti import MitreAttackClient

    class Reachable:
        def raise_for_status(self):
            return None

    calls = []

    def download(*, download_dir, release, domains, **kwargs):  # what attackcti leaves on disk
        calls.append((release, domains))
        target = Path(download_dir) / f"v{release}" / "enterprise-attack.json"
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(as_stix21(snapshot_objects())), encoding="utf-8")

    monkeypatch.setattr(requests, "head", lambda *a, **k: Reachable())
    monkeypatch.setattr(MitreAttackClient, "from_attack_stix_data", download)
    output = tmp_path / "data" / "enterprise-attack.json.xz"
    assert run_cli("update", "--release", "19.1", "--output", str(output)) == 0
    assert calls == [("19.1", ("enterprise",))]
    assert load_knowledge(output).release == "19.1"
    assert (output.parent / "NOTICE").is_file() and (output.parent / "LICENSE-ATTACK.txt").is_file()
