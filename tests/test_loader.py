"""Loading: bad input becomes listed problems with places, Sigma document kinds, files and links."""

from __future__ import annotations

import os
import re
import textwrap
import time
from pathlib import Path

from catalog.analysis import analyse
from catalog.loader import discover, load_text
from catalog.loader import load as load_folders
from catalog.model import CorrelationRule, FilterRule, Rule
from catalog.pipeline import build_catalog
from catalog.problems import Severity

REFERENCE = Path(__file__).resolve().parents[1] / "rules" / "windows" / "image_load" / "wmi-module-loaded-by-suspicious-process.yml"
PROBLEM = re.compile(r"^(?P<path>[^:]+)(?::(?P<line>\d+):(?P<column>\d+))?: (?P<severity>error|warning): (?P<message>.+) \[(?P<code>[a-z0-9-]+)\]$")

RULE = """\
title: A rule
logsource:
    product: windows
detection:
    selection:
        Image|endswith: '\\cmd.exe'
    condition: selection
"""


def load(text: str):
    """The documents and problems of one file's text, read as `rules/x.yml`."""
    return load_text(text, "rules", "x.yml")


def the_error(text: str):
    """The one error of a text that gives no document, checked against the printed form."""
    documents, problems = load(text)
    assert documents == [], documents
    (problem,) = [problem for problem in problems if problem.severity is Severity.ERROR]
    match = PROBLEM.match(str(problem))
    assert match, str(problem)
    assert match["path"] == "rules/x.yml" and match["code"] == problem.code
    return problem


# --- bad input ---------------------------------------------------------------------------------


def test_problem_string_form():
    problem = the_error("title: t\ndetection: [unclosed\n")
    assert str(problem) == f"rules/x.yml:{problem.line}:{problem.column}: error: {problem.message} [yaml]"
    assert problem.to_json() == {
        "path": "rules/x.yml",
        "line": problem.line,
        "column": problem.column,
        "severity": "error",
        "code": "yaml",
        "message": problem.message,
    }


def test_broken_yaml():
    problem = the_error("title: t\nlogsource:\n    product: windows\n  detection: x\n")
    assert problem.code == "yaml"
    assert problem.message.startswith("YAML syntax error:")
    assert (problem.line, problem.column) == (4, 3)


def test_unclosed_flow_list():
    problem = the_error("title: t\ntags: [attack.execution\nlevel: high\n")
    assert problem.code == "yaml" and problem.line >= 2


def test_tab_indentation():
    problem = the_error("title: t\ndetection:\n\tselection: x\n")
    assert problem.code == "yaml" and problem.line == 3


def test_duplicate_key_is_an_error_but_the_rule_loads_with_the_last_value():
    documents, problems = load(RULE + "level: high\ntitle: Again\n")
    (problem,) = problems
    assert (problem.code, problem.severity, problem.line, problem.column) == ("duplicate-key", Severity.ERROR, 9, 1)
    assert "duplicate key 'title' on lines 1 and 9" in problem.message and "value of line 9" in problem.message
    assert documents[0].title == "Again"  # as YAML reads it, and as the finding says


def test_duplicate_key_inside_detection():
    text = RULE.replace("    condition: selection\n", "    selection:\n        Image: x\n    condition: selection\n")
    documents, problems = load(text)
    (problem,) = problems
    assert "duplicate key 'selection' on lines 5 and 7" in problem.message
    assert (problem.line, problem.column) == (7, 5)
    assert documents[0].detection.identifiers["selection"].items[0].values == ("x",)


def test_undefined_identifier_in_the_condition():
    problem = the_error(RULE.replace("condition: selection", "condition: selection and not filter"))
    assert problem.code == "condition"
    assert (problem.line, problem.column) == (7, 34)
    assert "'filter' is not a search identifier defined in detection" in problem.message


def test_title_as_a_list():
    problem = the_error(RULE.replace("title: A rule", "title: [a, b]"))
    assert (problem.code, problem.line, problem.column) == ("wrong-type", 1, 8)
    assert problem.message == "'title' must be text, not a list"


def test_tags_as_a_map():
    problem = the_error(RULE + "tags:\n    attack: execution\n")
    assert (problem.code, problem.line, problem.column) == ("wrong-type", 9, 5)
    assert problem.message == "'tags' must be a list of text values, not a map"


def test_detection_as_a_list():
    problem = the_error("title: t\nlogsource: {product: windows}\ndetection:\n    - selection\n")
    assert (problem.code, problem.line, problem.column) == ("wrong-type", 4, 5)
    assert problem.message == "'detection' must be a map, not a list"


def test_a_list_where_a_map_belongs():
    problem = the_error(RULE.replace("logsource:\n    product: windows\n", "logsource:\n    - windows\n"))
    assert (problem.code, problem.line, problem.column) == ("wrong-type", 3, 5)
    assert problem.message == "'logsource' must be a map, not a list"


def test_a_map_where_values_belong():
    problem = the_error(RULE.replace("Image|endswith: '\\cmd.exe'", "Image|endswith:\n            path: '\\cmd.exe'"))
    assert (problem.code, problem.line) == ("wrong-type", 7)
    assert "a map where a value or a list of values belongs" in problem.message


def test_a_list_inside_a_list_of_values():
    problem = the_error(RULE.replace("Image|endswith: '\\cmd.exe'", "Image|endswith:\n            - ['\\cmd.exe']"))
    assert problem.code == "wrong-type" and "item 1 is a list, not a value" in problem.message


def test_single_text_where_a_list_belongs_is_a_one_item_list():
    """Sigma 2.1 allows one text where a list is expected: no finding."""
    documents, problems = load(RULE + "falsepositives: Unknown\ntags: attack.t1059\nreferences: https://example.org/a\nfields: CommandLine\n")
    document = documents[0]
    assert (document.falsepositives, document.tags, document.references, document.fields) == (
        ("Unknown",), ("attack.t1059",), ("https://example.org/a",), ("CommandLine",))
    assert problems == []


def test_missing_title():
    problem = the_error(RULE.replace("title: A rule\n", ""))
    assert problem.code == "missing-field" and "'title'" in problem.message


def test_not_a_map():
    problem = the_error("- just\n- a list\n")
    assert (problem.code, problem.line, problem.column) == ("not-a-map", 1, 1)


def test_a_title_without_detection():
    problem = the_error("title: t\ndescription: nothing to detect\n")
    assert problem.code == "missing-field" and "'detection'" in problem.message


def test_non_utf8_bytes(tmp_path):
    (tmp_path / "latin1.yml").write_bytes(b"title: t\ndescription: caf\xe9 au lait\n")
    result = load_folders([tmp_path])
    (problem,) = result.problems
    assert problem.code == "not-utf8"
    assert (problem.line, problem.column) == (2, 17)  # the byte 0xe9
    assert str(problem) == f"{tmp_path}/latin1.yml:2:17: error: byte 0xe9 is not valid UTF-8; rules must be UTF-8 text [not-utf8]"
    assert result.documents == []


def test_utf8_byte_order_mark_is_fine(tmp_path):
    (tmp_path / "bom.yml").write_bytes("\ufeff".encode() + RULE.encode())
    result = load_folders([tmp_path])
    assert result.problems == [] and len(result.documents) == 1


def test_empty_file():
    problem = the_error("")
    assert problem.code == "empty-file"
    assert str(problem) == "rules/x.yml: error: the file is empty: there is no rule in it [empty-file]"
    assert the_error("  \n\n").code == "empty-file"


def test_file_of_only_separators():
    assert the_error("---\n").code == "empty-file"
    assert the_error("---\n---\n...\n").code == "empty-file"


def test_alias_bomb_fails_fast():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 10) + "]")
    text = RULE + "\n".join(lines) + "\n"
    started = time.perf_counter()
    problem = the_error(text)
    assert time.perf_counter() - started < 5
    assert problem.code == "expands-too-large"
    assert "alias bomb" in problem.message and "1,000,000 values" in problem.message


def test_aliases_of_normal_size_are_fine():
    text = "title: t\nlogsource: {product: windows}\ndetection:\n    selection:\n        Image|endswith: &tools ['\\a.exe', '\\b.exe']\n    other:\n        ParentImage|endswith: *tools\n    condition: selection and other\n"
    documents, problems = load(text)
    assert problems == []
    assert documents[0].detection.identifiers["other"].items[0].values == ("\\a.exe", "\\b.exe")


def test_non_standard_tag_refused():
    problem = the_error("title: !!python/object:os.system t\n" + RULE.split("\n", 1)[1])
    assert problem.code == "yaml"
    assert (problem.line, problem.column) == (1, 8)
    assert "the YAML tag 'tag:yaml.org,2002:python/object:os.system' is not allowed" in problem.message


def test_local_tag_refused():
    problem = the_error(RULE + "level: !custom high\n")
    assert "'!custom' is not allowed" in problem.message


def test_dates_stay_text():
    documents, _ = load(RULE + "date: 2024-01-31\nmodified: 2024/02/01\n")
    assert (documents[0].date, documents[0].modified) == ("2024-01-31", "2024/02/01")


def test_references_de_duplicated_in_order():
    documents, _ = load(RULE + "references:\n    - https://b.example\n    - https://a.example\n    - https://b.example\n")
    assert documents[0].references == ("https://b.example", "https://a.example")


# --- multi-document files ----------------------------------------------------------------------


def test_multi_document_file_gives_several_rules():
    text = RULE + "---\n" + RULE.replace("A rule", "Another rule").replace("cmd.exe", "pwsh.exe")
    documents, problems = load(text)
    assert problems == []
    assert [document.title for document in documents] == ["A rule", "Another rule"]
    assert [document.source.document for document in documents] == [0, 1]
    assert [document.source.line for document in documents] == [1, 9]
    assert documents[1].source.display_path == "rules/x.yml (document 2)"
    assert documents[0].source.raw_text == RULE  # each document shows its own text
    assert documents[1].source.raw_text.lstrip("-\n").startswith("title: Another rule")


def test_action_global_collection():
    text = textwrap.dedent(
        """\
        action: global
        title: Service install
        status: test
        detection:
            condition: selection
        level: high
        ---
        logsource:
            product: windows
            service: system
        detection:
            selection:
                EventID: 7045
        ---
        logsource:
            product: windows
            service: security
        detection:
            selection:
                EventID: 4697
        """
    )
    documents, problems = load(text)
    assert problems == []
    assert [(d.title, d.status, d.level, d.logsource.service) for d in documents] == [
        ("Service install", "test", "high", "system"),
        ("Service install", "test", "high", "security"),
    ]
    assert [d.detection.identifiers["selection"].items[0].values for d in documents] == [(7045,), (4697,)]
    assert [d.detection.conditions[0].text for d in documents] == ["selection", "selection"]
    assert [d.source.document for d in documents] == [1, 2]
    assert documents[0].source.raw_text.startswith("action: global")  # the page shows the template too


def test_global_document_errors_are_placed_in_the_global_part():
    text = "action: global\ntitle: t\ndetection:\n    condition: selection and nope\n---\nlogsource: {product: windows}\ndetection:\n    selection: {F: 1}\n"
    documents, problems = load(text)
    (problem,) = problems
    assert (problem.code, problem.line, problem.column) == ("condition", 4, 30)


def test_action_repeat_and_reset():
    text = RULE + "---\naction: repeat\ntitle: Repeated\n---\naction: reset\n---\n" + RULE.replace("A rule", "Fresh")
    documents, problems = load(text)
    assert problems == []
    assert [d.title for d in documents] == ["A rule", "Repeated", "Fresh"]
    assert documents[1].detection.identifiers["selection"].items[0].values == ("\\cmd.exe",)


def test_unknown_action():
    documents, problems = load("action: merge\n" + RULE)
    assert documents == [] and [problem.code for problem in problems] == ["unknown-action"]


def test_a_bad_document_does_not_hide_the_others():
    documents, problems = load(RULE + "---\ntitle: [broken]\n" + RULE.split("\n", 1)[1] + "---\n" + RULE.replace("A rule", "Third"))
    assert [d.title for d in documents] == ["A rule", "Third"]
    (problem,) = problems
    assert (problem.code, problem.line) == ("wrong-type", 9)


# --- correlations and filters ------------------------------------------------------------------

CORRELATION = """\
title: Many failed logons
id: 11111111-2222-4333-8444-555555555555
correlation:
    type: value_count
    rules:
        - failed_logon
        - 0d5a4c2e-6f4a-4f7e-8a3c-7b1f2f1e9d01
        - no_such_rule
    group-by:
        - IpAddress
    timespan: 10m
    condition:
        gte: 10
        field: TargetUserName
level: high
"""

FAILED_LOGON = """\
title: Failed logon
name: failed_logon
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4625}
    condition: selection
"""

EXPLICIT_LOGON = """\
title: Explicit logon
id: 0d5a4c2e-6f4a-4f7e-8a3c-7b1f2f1e9d01
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4648}
    condition: selection
"""

FILTER = """\
title: Not the scanner
logsource: {product: windows, service: security}
filter:
    rules:
        - failed_logon
    selection:
        IpAddress: 10.0.0.5
    condition: not selection
"""


def test_correlation_fields_are_typed():
    documents, problems = load(CORRELATION)
    assert problems == []
    (correlation,) = documents
    assert isinstance(correlation, CorrelationRule) and correlation.kind == "correlation"
    assert correlation.type == "value_count"
    assert correlation.rules == ("failed_logon", "0d5a4c2e-6f4a-4f7e-8a3c-7b1f2f1e9d01", "no_such_rule")
    assert correlation.group_by == ("IpAddress",)
    assert correlation.timespan == "10m"
    assert correlation.condition.operators == (("gte", 10),)
    assert correlation.condition.field == "TargetUserName"
    assert correlation.condition.text == "TargetUserName gte 10"


def test_correlation_errors():
    bad_type = the_error(CORRELATION.replace("type: value_count", "type: sometimes"))
    assert bad_type.code == "correlation-type" and bad_type.line == 4
    bad_operator = the_error(CORRELATION.replace("gte: 10", "more: 10"))
    assert bad_operator.code == "correlation-condition" and bad_operator.line == 13
    no_rules = the_error(CORRELATION.replace("        - failed_logon\n        - 0d5a4c2e-6f4a-4f7e-8a3c-7b1f2f1e9d01\n        - no_such_rule\n", "        []\n").replace("rules:\n        []", "rules: []"))
    assert no_rules.code == "missing-field"


def test_filter_fields_are_typed():
    documents, problems = load(FILTER)
    assert problems == []
    (filter_rule,) = documents
    assert isinstance(filter_rule, FilterRule) and filter_rule.kind == "filter"
    assert filter_rule.rules == ("failed_logon",)
    assert list(filter_rule.detection.identifiers) == ["selection"]  # `rules` is not a search
    assert filter_rule.logsource.service == "security"


def test_links_resolved_by_id_and_by_name(tmp_path):
    for name, text in [("a_failed.yml", FAILED_LOGON), ("b_explicit.yml", EXPLICIT_LOGON), ("c_corr.yml", CORRELATION), ("d_filter.yml", FILTER)]:
        (tmp_path / name).write_text(text, encoding="utf-8")
    catalog = build_catalog([tmp_path])
    entries = {entry.document.title: entry for entry in catalog.entries}
    correlation = entries["Many failed logons"]
    assert [target.document.title for target in correlation.targets] == ["Failed logon", "Explicit logon"]
    assert [entry.document.title for entry in entries["Failed logon"].correlations] == ["Many failed logons"]
    assert [entry.document.title for entry in entries["Explicit logon"].correlations] == ["Many failed logons"]
    assert [entry.document.title for entry in entries["Failed logon"].filters] == ["Not the scanner"]
    (exclusion,) = entries["Failed logon"].filter_exclusions
    assert exclusion.source == "Not the scanner" and exclusion.rows == (("IpAddress", "equals", "10.0.0.5"),)
    (warning,) = [problem for problem in catalog.problems if problem.code == "unresolved-reference"]
    assert warning.severity is Severity.WARNING
    assert str(warning) == f"{tmp_path}/c_corr.yml:1:1: warning: 'no_such_rule' names no rule of the catalog (by id or name) [unresolved-reference]"


# --- files -------------------------------------------------------------------------------------


def test_symlink_out_of_the_rules_folder(tmp_path):
    rules, outside = tmp_path / "rules", tmp_path / "outside"
    (rules / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.yml").write_text(RULE, encoding="utf-8")
    (rules / "sub" / "real.yml").write_text(RULE, encoding="utf-8")
    os.symlink(outside / "secret.yml", rules / "escape.yml")
    os.symlink(outside, rules / "escape_folder")
    os.symlink(rules / "sub" / "real.yml", rules / "inside.yml")
    files, problems = discover([rules])
    assert [rule_file.relative for rule_file in files] == ["inside.yml", "sub/real.yml"]
    assert sorted((problem.path, problem.code) for problem in problems) == [
        (f"{rules}/escape.yml", "symlink-outside"),
        (f"{rules}/escape_folder", "symlink-outside"),
    ]


def test_missing_folder_reported(tmp_path):
    files, problems = discover([tmp_path / "nowhere"])
    assert files == [] and [problem.code for problem in problems] == ["missing-folder"]


def test_files_in_stable_order(tmp_path):
    for relative in ["b/z.yml", "a/y.yaml", "a.yml", "B.yml", "a/b/x.yml", "c.txt"]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(RULE, encoding="utf-8")
    first = [rule_file.relative for rule_file in discover([tmp_path])[0]]
    assert first == ["B.yml", "a.yml", "a/b/x.yml", "a/y.yaml", "b/z.yml"]
    assert [rule_file.relative for rule_file in discover([tmp_path])[0]] == first
    single, _ = discover([tmp_path / "a.yml"])
    assert [(rule_file.root, rule_file.relative) for rule_file in single] == [(str(tmp_path), "a.yml")]


def test_every_file_accounted_for(tmp_path):
    texts = {
        "good.yml": RULE,
        "two.yml": RULE + "---\n" + RULE.replace("A rule", "Second"),
        "empty.yml": "",
        "broken.yml": "title: [\n",
        "wrong.yml": "title: t\ndetection: [a]\n",
        "warned.yml": RULE + "level: severe\n",
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "binary.yml").write_bytes(b"\x00\xff\xfe")
    result = load_folders([tmp_path])
    assert len(result.files) == 7
    with_documents = {document.source.path for document in result.documents}
    with_problems = {problem.path for problem in result.problems}
    for rule_file in result.files:
        assert rule_file.relative in with_documents or rule_file.display in with_problems, rule_file
    assert with_documents == {"good.yml", "two.yml", "warned.yml"}
    assert sum(1 for document in result.documents if document.source.path == "two.yml") == 2


# --- the reference rule ------------------------------------------------------------------------


def test_reference_rule_analysis():
    documents, problems = load_text(REFERENCE.read_text(encoding="utf-8"), "rules", "windows/image_load/wmi-module-loaded-by-suspicious-process.yml")
    assert problems == []
    (rule,) = documents
    assert isinstance(rule, Rule)
    assert rule.title == "WMI module loaded by suspicious process"
    assert rule.logsource.label == "windows / image_loaded"
    assert rule.tags == ("attack.execution", "attack.t1047")
    assert len(rule.references) == 6  # one of the seven is written twice
    analysis = analyse(rule.detection)
    assert [(stage.number, stage.title) for stage in analysis.stages] == [(0, "condition"), (1, "selection"), (2, "not filter")]
    assert analysis.stages[0].text == "selection and not filter"
    (exclusion,) = analysis.exclusions
    assert exclusion.rows == (
        ("Image", "ends_with", "\\svchost.exe"),
        ("Image", "ends_with", "\\wmiapsrv.exe"),
        ("Image", "ends_with", "\\wmiprvse.exe"),
    )
    rows = [(indicator.field, indicator.kind, indicator.value) for indicator in analysis.indicators]
    assert rows[0] == ("EventID", "equals", "7")
    assert rows[1:] == [
        ("ImageLoaded", "ends_with", value)
        for value in [
            "\\wmiclnt.dll",
            "\\WmiApRpl.dll",
            "\\wmiprov.dll",
            "\\wmiutils.dll",
            "\\wbemcomn.dll",
            "\\WMINet_Utils.dll",
            "\\wbemsvc.dll",
            "\\fastprox.dll",
            "\\wmi*",
        ]
    ]


def test_duplicate_id_errors_come_in_the_documents_order_whatever_the_hash_seed(tmp_path):
    """catalog.json lists the problems in the catalog's order: it must not depend on set order,
    which changes from process to process (a served site was not byte-identical to a build)."""
    import subprocess
    import sys
    import uuid

    for pair in range(5):
        shared_id = uuid.UUID(int=(pair * 7919 + 13) << 64 | pair)
        for copy in "ab":
            (tmp_path / f"rule{pair}{copy}.yml").write_text(
                f"title: Pair {pair} copy {copy}\nid: {shared_id}\nlogsource:\n    product: windows\n"
                f"detection:\n    selection:\n        Image: 'x{pair}.exe'\n    condition: selection\n", encoding="utf-8")
    script = ("import sys; from catalog.pipeline import build_catalog; "
              "print([p.path.rsplit('/', 1)[-1] for p in build_catalog([sys.argv[1]]).problems if p.code == 'duplicate-id'])")
    orders = set()
    for seed in ("1", "2", "3", "4"):
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONHASHSEED=seed))
        assert done.returncode == 0, done.stderr
        orders.add(done.stdout.strip())
    assert orders == {str([f"rule{pair}{copy}.yml" for pair in range(5) for copy in "ab"])}
