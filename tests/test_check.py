"""`catalog check`: each kind of finding, the three output formats, exit codes, pySigma offline."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from catalog.check import default_paths, escape_data, escape_property, github_command, run_check
from catalog.cli import main
from catalog.problems import Problem, Severity

from conftest import CORPUS, PROJECT


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def rule(rule_id: str = "5b9e2c3a-0000-4000-8000-000000000001", *, tags: str = "", detection: str | None = None, title: str = "A rule") -> str:
    detection = detection or """
        selection:
            Image|endswith: '\\\\evil.exe'
        condition: selection
    """
    tag_block = "tags:\n" + "".join(f"    - {tag}\n" for tag in tags.split()) if tags else ""
    return (
        f"title: {title}\nid: {rule_id}\nstatus: test\nlevel: high\n{tag_block}"
        "logsource:\n    category: process_creation\n    product: windows\n"
        "detection:\n" + textwrap.indent(textwrap.dedent(detection).strip("\n"), "    ") + "\n"
    )


#: One small broken rule per finding kind: (file name, text, expected code, expected severity, words in the message).
CASES = [
    ("yaml.yml", "title: [unclosed\n", "yaml", "error", "YAML syntax error"),
    ("duplicate_key.yml", rule() + "level: low\n", "duplicate-key", "error", "duplicate key 'level'"),
    ("missing_title.yml", rule().replace("title: A rule\n", ""), "missing-field", "error", "'title' is missing"),
    ("wrong_type.yml", rule().replace("status: test\n", "status: test\nreferences: {a: b}\n"), "wrong-type", "error", "'references' must be a list"),
    ("condition_syntax.yml", rule(detection="selection:\n    Image: x\ncondition: selection and (\n"), "condition", "error", "where an identifier"),
    ("undefined.yml", rule(detection="selection:\n    Image: x\ncondition: selection and not filter\n"), "condition", "error", "'filter' is not a search identifier"),
    ("unused.yml", rule(detection="selection:\n    Image: x\nfilter:\n    User: y\ncondition: selection\n"), "unused-identifier", "warning", "'filter' is defined but no condition uses it"),
    ("unknown_modifier.yml", rule(detection="selection:\n    Image|endwith: x\ncondition: selection\n"), "modifier", "error", "unknown modifier 'endwith'"),
    ("impossible_chain.yml", rule(detection="selection:\n    Image|contains|startswith: x\ncondition: selection\n"), "modifier", "error", "cannot follow"),
    ("unknown_technique.yml", rule("5b9e2c3a-0000-4000-8000-000000000002", tags="attack.execution attack.t9999"), "attack-unknown-technique", "warning", "T9999 is not in"),
    ("revoked.yml", rule("5b9e2c3a-0000-4000-8000-000000000003", tags="attack.execution attack.t1086"), "attack-revoked-technique", "warning", "tag attack.t1059.001 instead"),
    ("deprecated.yml", rule("5b9e2c3a-0000-4000-8000-000000000004", tags="attack.command-and-control attack.t1043"), "attack-deprecated-technique", "warning", "T1043 (Commonly Used Port) is deprecated"),
    ("tactic_not_tagged.yml", rule("5b9e2c3a-0000-4000-8000-000000000005", tags="attack.t1047"), "attack-technique-tactic-not-tagged", "warning", "add attack.execution"),
    ("unknown_tactic.yml", rule("5b9e2c3a-0000-4000-8000-000000000006", tags="attack.defense_evasion"), "attack-unknown-tactic", "warning", "split Defense Evasion"),
]


@pytest.fixture()
def broken(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    for index, (name, text, *_) in enumerate(CASES):
        write(folder, name, text.replace("-000000000001", f"-{index + 100:012d}"))  # one id each
    # two rules with one id, and a correlation naming a rule that does not exist
    write(folder, "dup_a.yml", rule("5b9e2c3a-0000-4000-8000-0000000000aa", title="First"))
    write(folder, "dup_b.yml", rule("5b9e2c3a-0000-4000-8000-0000000000aa", title="Second"))
    write(folder, "correlation.yml", """
        title: Many evil starts
        id: 5b9e2c3a-0000-4000-8000-0000000000cc
        correlation:
            type: event_count
            rules:
                - no-such-rule
            group-by:
                - Computer
            timespan: 5m
            condition:
                gte: 10
        level: high
    """)
    return folder


def findings(result, name: str) -> list[Problem]:
    return [problem for problem in result.problems if problem.path.endswith("/" + name)]


def test_each_kind_of_finding(broken, capsys):
    from catalog.attack import load_knowledge

    result = run_check([str(broken)], load_knowledge())
    for name, _, code, severity, words in CASES:
        matching = [p for p in findings(result, name) if p.code == code]
        assert matching, f"{name}: no {code} in {[str(p) for p in findings(result, name)]}"
        assert any(p.severity.value == severity and words in p.message for p in matching), [str(p) for p in matching]
        assert all(p.line > 0 for p in matching if p.code in ("yaml", "condition", "modifier", "unused-identifier", "wrong-type"))
    duplicate = [p for p in findings(result, "dup_b.yml") if p.code == "duplicate-id"]
    assert duplicate and "dup_a.yml" in duplicate[0].message and duplicate[0].severity is Severity.ERROR
    twin = [p for p in findings(result, "dup_a.yml") if p.code == "duplicate-id"]
    assert twin and "(dup_b.yml)" in twin[0].message and str(broken) not in twin[0].message
    unresolved = [p for p in findings(result, "correlation.yml") if p.code == "unresolved-reference"]
    assert unresolved and "'no-such-rule'" in unresolved[0].message
    # the ATT&CK findings are not reported twice (the engine's warnings plus ours)
    assert len(result.problems) == len(set(result.problems))
    assert result.failed() and result.failed(strict=True)


def test_text_format_and_exit_codes(broken, tmp_path, capsys):
    assert main(["check", str(broken)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("catalog check: FAILED: ") and " errors, " in out[-1]
    line = next(text for text in out if "undefined.yml" in text)
    assert line.startswith(f"{broken}/undefined.yml:") and ": error: " in line and line.endswith("[condition]")
    assert line.split(":")[1].isdigit() and line.split(":")[2].isdigit()  # file:line:column

    clean = tmp_path / "clean"
    write(clean, "ok.yml", rule(tags="attack.execution attack.t1047"))
    assert main(["check", str(clean)]) == 0
    assert "0 errors, 0 warnings" in capsys.readouterr().out

    warned = tmp_path / "warned"
    write(warned, "w.yml", rule(tags="attack.t1047"))
    assert main(["check", str(warned)]) == 0  # warnings alone pass...
    capsys.readouterr()
    assert main(["check", "--strict", str(warned)]) == 1  # ...unless strict
    assert "FAILED" in capsys.readouterr().out
    assert main(["check", "--no-attack", "--strict", str(warned)]) == 0
    capsys.readouterr()

    assert main(["check", "--attack-data", str(tmp_path / "missing.json"), str(clean)]) == 2
    assert "ATT&CK data not found" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "no-such-folder")]) == 1
    assert "missing-folder" in capsys.readouterr().out


def test_json_format(broken, capsys):
    assert main(["check", "--format", "json", str(broken)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["failed"] is True and data["strict"] is False
    assert data["summary"]["errors"] == sum(1 for p in data["problems"] if p["severity"] == "error") > 0
    assert data["summary"]["by_code"]["duplicate-id"] == 2  # one at the id line of each file
    assert {"path", "line", "column", "severity", "code", "message"} <= set(data["problems"][0])


def test_github_format_escapes_values(broken, capsys):
    assert main(["check", "--format", "github", str(broken)]) == 1
    lines = capsys.readouterr().out.splitlines()
    commands = [line for line in lines if line.startswith("::")]
    assert commands and all(line.startswith(("::error file=", "::warning file=")) for line in commands)
    assert any(line.startswith("::error ") and "undefined.yml,line=" in line and ",col=" in line and ",title=sigma condition::" in line for line in commands)
    assert lines[-1].startswith("catalog check: FAILED")

    nasty = Problem("rules/a,b:c%.yml", 3, 7, Severity.WARNING, "x", "50% done\r\nnext: line, more")
    assert github_command(nasty) == "::warning file=rules/a%2Cb%3Ac%25.yml,line=3,col=7,title=sigma x::50%25 done%0D%0Anext: line, more"
    assert github_command(Problem("f.yml", 0, 0, Severity.ERROR, "yaml", "m")) == "::error file=f.yml,title=sigma yaml::m"
    assert escape_data("%\r\n:,") == "%25%0D%0A:,"
    assert escape_property("%\r\n:,") == "%25%0D%0A%3A%2C"


def test_default_folders_come_from_mkdocs_yml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_paths() == ["rules"]
    (tmp_path / "mkdocs.yml").write_text(
        "site_name: x\nmarkdown_extensions:\n  - pymdownx.emoji:\n      emoji_index: !!python/name:material.extensions.emoji.twemoji\n"
        "plugins:\n  - search\n  - sigma-catalog:\n      rules:\n        - detections\n        - more/rules\n",
        encoding="utf-8",
    )
    assert default_paths() == ["detections", "more/rules"]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mkdocs.yml").write_text("site_name: x\nplugins:\n  - sigma-catalog:\n      rules:\n        - r\n", encoding="utf-8")
    assert default_paths("sub/mkdocs.yml") == ["sub/r"]
    (tmp_path / "sub" / "mkdocs.yml").write_text(
        "site_name: x\nplugins:\n  - sigma-catalog:\n      rules:\n        - path: a\n          name: A\n        - b\n", encoding="utf-8"
    )
    assert default_paths("sub/mkdocs.yml") == ["sub/a", "sub/b"]
    write(tmp_path / "detections", "a.yml", rule())
    assert main(["check", "--no-attack"]) == 1  # more/rules does not exist: reported, and that fails


def test_options_the_plugin_refuses_are_a_clear_error(tmp_path, monkeypatch, capsys):
    """The folders come from the plugin's own option parsing: what a build would refuse, check refuses."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mkdocs.yml").write_text("site_name: x\nplugins:\n  - sigma-catalog:\n      rules: r\n", encoding="utf-8")
    assert main(["check", "--no-attack"]) == 2
    assert "mkdocs.yml: plugin sigma-catalog, option 'rules': Expected a list" in capsys.readouterr().err
    (tmp_path / "mkdocs.yml").write_text("site_name: x\nplugins:\n  - sigma-catalog:\n      rule_dirs: [r]\n", encoding="utf-8")
    assert default_paths() == ["rules"]  # an option the plugin does not have is not guessed at
    (tmp_path / "mkdocs.yml").write_text("INHERIT: base.yml\n", encoding="utf-8")
    (tmp_path / "base.yml").write_text("site_name: x\nplugins:\n  - sigma-catalog:\n      rules: [inherited]\n", encoding="utf-8")
    assert default_paths() == ["inherited"]  # MkDocs' own loading: INHERIT is followed


def test_default_folders_of_this_repository(monkeypatch, capsys):
    monkeypatch.chdir(PROJECT)
    assert default_paths() == ["rules"]
    assert main(["check"]) == 0  # the project's own rules have no errors
    assert "catalog check: ok:" in capsys.readouterr().out


def test_pysigma_runs_offline(broken, monkeypatch, capsys):
    """pySigma's ATT&CK validator answers from our snapshot: any connection attempt would fail."""
    pytest.importorskip("sigma")
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("HOME", str(broken.parent / "home"))  # no pySigma disk cache to fall back on
    from sigma.data import mitre_attack

    before = set(vars(mitre_attack))
    started = time.monotonic()
    try:
        code = main(["check", "--pysigma", "--format", "json", str(broken)])
    finally:  # leave pySigma as other tests expect it
        for name in set(vars(mitre_attack)) - before:
            delattr(mitre_attack, name)
    elapsed = time.monotonic() - started
    data = json.loads(capsys.readouterr().out)
    assert attempts == [] and elapsed < 60
    assert code == 1
    pysigma = [p for p in data["problems"] if p["code"].startswith("pysigma-")]
    attack_tags = [p for p in pysigma if p["code"] == "pysigma-invalid_attacktag"]
    assert any("attack.t9999" in p["message"] and p["path"].endswith("unknown_technique.yml") for p in attack_tags), pysigma
    assert not any("attack.execution" in p["message"] for p in attack_tags)  # the snapshot's tactics are known
    assert not (broken.parent / "home" / ".cache" / "pysigma").exists()


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.is_dir(), reason="needs ../shared/corpora/sigmahq")
def test_sigmahq_corpus(capsys):
    started = time.perf_counter()
    code = main(["check", "--format", "json", str(CORPUS)])
    elapsed = time.perf_counter() - started
    data = json.loads(capsys.readouterr().out)
    by_code = Counter((p["severity"], p["code"]) for p in data["problems"])
    with capsys.disabled():
        print(f"\ncatalog check {CORPUS}: exit {code}, {elapsed:.1f} s, {data['summary']['files']} files")
        for (severity, kind), count in sorted(by_code.items()):
            print(f"  {count:5d} {severity:7s} {kind}")
    assert data["summary"]["files"] > 3000
    assert elapsed < 120
    # the maintained folders (rules/, rules-*) are clean of errors; what is left is in deprecated/ and unsupported/
    live = [p for p in data["problems"] if p["severity"] == "error" and "/rules" in p["path"]]
    assert live == [], live
