"""Similar rules (catalog.similarity) on small crafted rule sets with known answers; the check warning."""

from __future__ import annotations

import textwrap
from pathlib import Path

from catalog.check import run_check
from catalog.pipeline import build_catalog
from catalog.problems import Code
from catalog.similarity import CANDIDATE_LIMIT, LIKELY_DUPLICATE, SCORED_CANDIDATES, SIMILAR_LIMIT, Similarity


def rule(title: str, number: int, selection: dict[str, list[str]], *, category: str = "process_creation",
         product: str = "windows", filters: list[str] = ()) -> str:
    lines = [f"title: {title}", f"id: 0000{number:04d}-1111-4222-8333-444455556666", "status: test",
             "logsource:", f"  product: {product}", f"  category: {category}", "detection:", "  selection:"]
    for field, values in selection.items():
        lines.append(f"    {field}:")
        lines.extend(f"      - '{value}'" for value in values)
    condition = "selection"
    if filters:
        lines += ["  filter:", "    ParentImage|endswith:"] + [f"      - '{value}'" for value in filters]
        condition = "selection and not filter"
    lines += [f"  condition: {condition}", "level: medium", ""]
    return "\n".join(lines)


def catalog_of(tmp_path: Path, rules: dict[str, str]):
    for name, text in rules.items():
        path = tmp_path / "rules" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    catalog = build_catalog([tmp_path / "rules"])
    slugs = {entry.document.title: entry.slug for entry in catalog.entries}
    return catalog, slugs


#: Many rules look for EventID 1: it must count for little.
COMMON = {f"common{n}.yml": rule(f"Common {n}", 100 + n, {"EventID": ["1"], "CommandLine|contains": [f"noise{n}"]}) for n in range(12)}


def test_a_copy_with_a_new_id_on_another_log_source_is_a_likely_duplicate(tmp_path):
    selection = {"Image|endswith": ["\\tool.exe"], "CommandLine|contains": ["--steal", "--dump"]}
    catalog, slugs = catalog_of(tmp_path, {
        "original.yml": rule("Original", 1, selection),
        "copy.yml": rule("Copy", 2, selection, category="image_load"),
        **COMMON,
    })
    (similar,) = [s for s in Similarity(catalog).of(slugs["Original"]) if s.slug == slugs["Copy"]]
    assert similar.score == 1.0 and similar.likely_duplicate
    assert similar.same_logsource is False
    assert len(similar.shared) == 3


def test_rare_shared_indicators_outweigh_common_ones(tmp_path):
    catalog, slugs = catalog_of(tmp_path, {
        "subject.yml": rule("Subject", 1, {"EventID": ["1"], "CommandLine|contains": ["rare-value", "other"]}),
        "rare.yml": rule("Shares the rare value", 2, {"CommandLine|contains": ["rare-value", "else"]}),
        "common.yml": rule("Shares EventID 1", 3, {"EventID": ["1"], "CommandLine|contains": ["other-thing"]}),
        **COMMON,
    })
    similarity = Similarity(catalog)
    ranked = [s.slug for s in similarity.of(slugs["Subject"])]
    assert ranked and ranked[0] == slugs["Shares the rare value"]
    rare = similarity.compare(slugs["Subject"], slugs["Shares the rare value"])
    common = similarity.compare(slugs["Subject"], slugs["Shares EventID 1"])
    assert rare.score > common.score
    assert not rare.likely_duplicate


def test_different_exclusions_are_different_logic(tmp_path):
    selection = {"Image|endswith": ["\\tool.exe"], "CommandLine|contains": ["--steal"]}
    catalog, slugs = catalog_of(tmp_path, {
        "a.yml": rule("Filters explorer", 1, selection, filters=["\\explorer.exe"]),
        "b.yml": rule("Filters services", 2, selection, filters=["\\services.exe"]),
        **COMMON,
    })
    similar = Similarity(catalog).compare(slugs["Filters explorer"], slugs["Filters services"])
    assert 0 < similar.score < LIKELY_DUPLICATE and not similar.likely_duplicate


def test_at_most_five_similar_rules_best_first_and_clusters(tmp_path):
    shared = {"CommandLine|contains": ["alpha-x", "beta-x", "gamma-x"]}
    rules = {f"r{n}.yml": rule(f"Rule {n}", n, {**shared, "Image|endswith": [f"\\p{n}.exe"] * (n > 2)}) for n in range(1, 9)}
    catalog, slugs = catalog_of(tmp_path, {**rules, **COMMON})
    similarity = Similarity(catalog)
    found = similarity.of(slugs["Rule 1"])
    assert len(found) == 5
    assert found[0].slug == slugs["Rule 2"] and found[0].score == 1.0  # rules 1 and 2: the same three values
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)
    (cluster,) = similarity.clusters()
    assert set(cluster.slugs) == {slugs["Rule 1"], slugs["Rule 2"]} and cluster.pairs[0][2] == 1.0
    assert similarity.top_pairs(1)[0][2] == 1.0


def test_unrelated_rules_have_no_similar_rules(tmp_path):
    catalog, slugs = catalog_of(tmp_path, {
        "a.yml": rule("A", 1, {"CommandLine|contains": ["one-thing"]}),
        "b.yml": rule("B", 2, {"CommandLine|contains": ["another-thing"]}),
    })
    assert Similarity(catalog).of(slugs["A"]) == []


def test_check_warns_of_a_likely_duplicate_naming_the_other_file(tmp_path):
    selection = {"Image|endswith": ["\\tool.exe"], "CommandLine|contains": ["--steal", "--dump"]}
    catalog_of(tmp_path, {"first.yml": rule("First", 1, selection), "sub/second.yml": rule("Second", 2, selection),
                          "other.yml": rule("Other", 3, {"CommandLine|contains": ["unrelated"]})})
    result = run_check([tmp_path / "rules"])
    warnings = [p for p in result.problems if p.code == Code.LIKELY_DUPLICATE]
    assert len(warnings) == 2
    by_file = {Path(p.path).name: p for p in warnings}
    assert "sub/second.yml" in by_file["first.yml"].message and "'Second'" in by_file["first.yml"].message
    assert "first.yml" in by_file["second.yml"].message
    assert by_file["first.yml"].line == 1 and not result.failed()


def test_another_legacy_aggregation_is_other_logic(tmp_path):
    def counted(title: str, number: int, aggregation: str) -> str:
        return rule(title, number, {"QueryName|contains": ["tunnel.example", "relay.example"]}).replace(
            "  condition: selection", f"  timeframe: 1m\n  condition: selection | {aggregation}")

    catalog, slugs = catalog_of(tmp_path, {"a.yml": counted("Counts", 1, "count() by SourceIp > 100"),
                                           "b.yml": counted("Sums", 2, "sum(Bytes) by SourceIp > 5000"), **COMMON})
    similar = Similarity(catalog).compare(slugs["Counts"], slugs["Sums"])
    assert similar.score < LIKELY_DUPLICATE and len(similar.shared_indicators) == 2


def test_an_exclusion_of_combined_tests_counts_too(tmp_path):
    selection = {"Image|endswith": ["/who", "/lsof"]}
    combined = rule("Filtered", 1, selection).replace("  condition: selection", (
        "  filter_sysinfo:\n    ParentCommandLine|contains: '/usr/bin/sysinfo'\n    Image|endswith: '/who'\n"
        "  condition: selection and not 1 of filter_*"))
    catalog, slugs = catalog_of(tmp_path, {"a.yml": combined, "b.yml": rule("Plain", 2, selection), **COMMON})
    similar = Similarity(catalog).compare(slugs["Filtered"], slugs["Plain"])
    assert similar.score < 1.0 and len(similar.shared_indicators) == 2


def test_the_duplicate_finding_names_the_other_file_by_its_label_never_the_machine_path(tmp_path):
    from catalog.findings import add_catalog_findings

    selection = {"Image|endswith": ["\\tool.exe"], "CommandLine|contains": ["--steal", "--dump"]}
    for name, text in {"original.yml": rule("Original", 1, selection), "copy.yml": rule("Copy", 2, selection), **COMMON}.items():
        (tmp_path / "rules").mkdir(exist_ok=True)
        (tmp_path / "rules" / name).write_text(text, encoding="utf-8")
    root = str(tmp_path / "rules")
    catalog = build_catalog([root], labels={root: "Our rules"})
    add_catalog_findings(catalog, None)
    messages = [p.message for p in catalog.problems if p.code == Code.LIKELY_DUPLICATE]
    assert len(messages) == 2 and all(str(tmp_path) not in message for message in messages)
    assert any("(Our rules/copy.yml)" in message for message in messages)


def test_after_an_edit_the_reused_rankings_are_those_computed_afresh(tmp_path):
    """mkdocs serve: Similarity(catalog, previous=...) takes over only what the edit cannot change."""
    from catalog.site.output import LoadCache

    selection = {"Image|endswith": ["\\tool.exe"], "CommandLine|contains": ["--steal", "--dump"]}
    rules = {"original.yml": rule("Original", 1, selection), "copy.yml": rule("Copy", 2, selection, category="image_load"),
             "near.yml": rule("Near", 3, {"Image|endswith": ["\\tool.exe"], "CommandLine|contains": ["--steal"]}),
             "apart.yml": rule("Apart", 4, {"Image|endswith": ["\\other.exe"], "CommandLine|contains": ["--quiet", "--fast"]}),
             "apart2.yml": rule("Apart too", 5, {"Image|endswith": ["\\other.exe"], "CommandLine|contains": ["--quiet"]}),
             # X shares two values with Y; Y shares a third with E, which X has not: an edit of E
             # changes Y's weight, and so X's score with Y
             "x.yml": rule("X", 7, {"CommandLine|contains": ["alpha-x", "beta-x"]}),
             "y.yml": rule("Y", 8, {"CommandLine|contains": ["alpha-x", "beta-x", "gamma-y"]}),
             "e.yml": rule("E", 9, {"CommandLine|contains": ["gamma-y", "delta-e"]}),
             **COMMON}
    catalog, slugs = catalog_of(tmp_path, rules)
    loads = LoadCache()
    folder = tmp_path / "rules"
    previous = Similarity(build_catalog([folder], load=loads.load))
    previous.all()
    edits = [
        lambda: (folder / "e.yml").write_text(rules["e.yml"].replace("gamma-y", "epsilon-e"), encoding="utf-8"),
        lambda: (folder / "near.yml").write_text(rules["near.yml"].replace("--steal", "--dump"), encoding="utf-8"),
        # X takes up a value E alone had: E, unchanged, no longer has it to itself
        lambda: (folder / "x.yml").write_text(rules["x.yml"].replace("beta-x", "delta-e"), encoding="utf-8"),
        lambda: (folder / "copy.yml").write_text(rules["copy.yml"].replace("image_load", "process_creation"), encoding="utf-8"),
        lambda: (folder / "original.yml").unlink(),
        lambda: (folder / "again.yml").write_text(rule("Again", 6, selection), encoding="utf-8"),
        lambda: (folder / "common3.yml").write_text(rule("Common 3", 103, {"EventID": ["1"], "Image|endswith": ["\\other.exe"]}),
                                                    encoding="utf-8"),
    ]
    reused_any = False
    for number, edit in enumerate(edits):
        edit()
        catalog = build_catalog([folder], load=loads.load)
        current = Similarity(catalog, previous=previous)
        fresh = Similarity(catalog)
        assert current.all() == fresh.all(), f"after edit {number}"
        assert current.clusters() == fresh.clusters()
        reused_any |= any(current.of(slug) is previous._by_rule.get(slug) for slug in current._slugs)
        previous = current
    assert reused_any, "nothing was reused: every ranking was computed again"
    assert previous.of(slugs["Apart"]) and previous.of(slugs["Apart"])[0].slug == slugs["Apart too"]


def scored_pairs(monkeypatch) -> list[tuple[str, str]]:
    """Records every pair Similarity scores exactly."""
    scored: list[tuple[str, str]] = []
    exact = Similarity._score

    def counting(self, rule: int, other: int) -> float:
        scored.append((self._slugs[rule], self._slugs[other]))
        return exact(self, rule, other)

    monkeypatch.setattr(Similarity, "_score", counting)
    return scored


def test_the_work_per_rule_is_bounded(tmp_path, monkeypatch):
    """Twenty rules share the subject's two rare values: only SCORED_CANDIDATES of them get the exact score."""
    rules = {f"near{n}.yml": rule(f"Near {n}", 10 + n, {"CommandLine|contains": ["--shared-a", "--shared-b", f"--own{n}"]})
             for n in range(20)}
    catalog, slugs = catalog_of(tmp_path, {"subject.yml": rule("Subject", 1, {"CommandLine|contains": ["--shared-a", "--shared-b"]}),
                                           **rules})
    scored = scored_pairs(monkeypatch)
    found = Similarity(catalog).of(slugs["Subject"])
    assert len({other for _, other in scored}) == SCORED_CANDIDATES < len(rules)
    assert len(found) == SIMILAR_LIMIT


def test_an_indicator_of_too_many_rules_proposes_no_candidates(tmp_path, monkeypatch):
    """Rules sharing only a value more than CANDIDATE_LIMIT rules use are never compared (it still
    counts in the scores of rules that share rarer values too)."""
    rules = {f"many{n}.yml": rule(f"Many {n}", 10 + n, {"CommandLine|contains": ["--everywhere", f"--own{n}"]})
             for n in range(CANDIDATE_LIMIT + 1)}
    catalog, slugs = catalog_of(tmp_path, rules)
    scored = scored_pairs(monkeypatch)
    assert Similarity(catalog).of(slugs["Many 0"]) == [] and scored == []
