"""Queries for real SIEM backends (catalog.conversions): expected query text per target, a rule that
does not convert, the cache, conversions while the rules are read, the workers' shortcut for plain
regular expressions, offline conversion, a missing backend, and the rule page's tabs.

Needs the `conversions` extra (pySigma 1.x and the backends); skipped without it."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

pytest.importorskip("sigma.backends.splunk")
pytest.importorskip("sigma.backends.elasticsearch")
pytest.importorskip("sigma.backends.kusto")

from catalog import conversion_worker, conversions  # noqa: E402
from catalog.pipeline import build_catalog  # noqa: E402
from catalog.problems import Code, Severity  # noqa: E402

from conftest import CORPUS, PROJECT, needs_corpus  # noqa: E402

REFERENCE = PROJECT / "rules/windows/image_load/wmi-module-loaded-by-suspicious-process.yml"
NINE = ["wmiclnt.dll", "WmiApRpl.dll", "wmiprov.dll", "wmiutils.dll", "wbemcomn.dll", "WMINet_Utils.dll", "wbemsvc.dll", "fastprox.dll", "wmi*"]

NETCAT = """\
title: Netcat with an execute flag
id: 6f0e2b1a-3c4d-4e5f-8a9b-0c1d2e3f4a5b
status: test
logsource:
  product: linux
  category: process_creation
detection:
  selection:
    Image|endswith: '/nc'
    CommandLine|contains: ' -e '
  condition: selection
level: high
"""
#: `expand` leaves a placeholder to the deployment: no backend converts it without a pipeline for it.
PLACEHOLDER = """\
title: Logon of a placeholder group
id: 7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
status: test
logsource:
  product: linux
  category: process_creation
detection:
  selection:
    User|expand: '%admin_users%'
  condition: selection
level: low
"""


def by_target(found: list[conversions.Conversion]) -> dict[str, conversions.Conversion]:
    return {conversion.target: conversion for conversion in found}


@pytest.fixture(scope="module")
def targets():
    return conversions.resolve_targets(["splunk", "lucene", "esql", "kusto"])


def convert_texts(texts: dict[str, str], targets, cache: Path | None = None, workers: int = 1):
    jobs = [conversions.Job(slug, text) for slug, text in texts.items()]
    return conversions.convert(jobs, targets, cache, workers=workers)


def test_the_reference_rule_per_target(targets):
    found = by_target(convert_texts({"ref": REFERENCE.read_text(encoding="utf-8")}, targets)["ref"])
    assert list(found) == ["splunk", "lucene", "esql", "kusto"]
    splunk = found["splunk"]
    # the backend's documented form: field=value terms, IN lists with wildcards, NOT (...) for the filter
    assert splunk.queries == (
        'EventID=7 ImageLoaded IN ("*\\\\wmiclnt.dll", "*\\\\WmiApRpl.dll", "*\\\\wmiprov.dll", "*\\\\wmiutils.dll", '
        '"*\\\\wbemcomn.dll", "*\\\\WMINet_Utils.dll", "*\\\\wbemsvc.dll", "*\\\\fastprox.dll", "*\\\\wmi*") '
        'NOT (Image IN ("*\\\\wmiprvse.exe", "*\\\\wmiapsrv.exe", "*\\\\svchost.exe"))',
    )
    assert splunk.pipeline == "windows-logsources" and splunk.backend.startswith("pysigma-backend-splunk ")
    assert "(pySigma 1." in splunk.backend
    esql = found["esql"].queries[0]
    assert esql.startswith("from * metadata _id, _index, _version | where ") and 'event.code=="7"' in esql
    assert found["esql"].pipeline == "ecs_windows"
    kql = found["kusto"].queries[0]
    assert kql.startswith("(EventID == 7 and (") and all(f'"\\\\{name.rstrip("*")}"' in kql for name in NINE)
    assert found["lucene"].queries[0].startswith("(event.code:7 AND (file.path:(")


def test_a_linux_rule_without_a_pipeline(targets):
    found = by_target(convert_texts({"nc": NETCAT}, targets)["nc"])
    assert found["splunk"].queries == ('Image="*/nc" CommandLine="* -e *"',)
    assert found["esql"].queries == ('from * metadata _id, _index, _version | where ends_with(Image, "/nc") and CommandLine like "* -e *"',)
    assert found["lucene"].queries == ("Image:*\\/nc AND CommandLine:*\\ \\-e\\ *",)
    assert found["kusto"].queries == ('Image endswith "/nc" and CommandLine contains " -e "',)
    assert {conversion.pipeline for conversion in found.values()} == {"none"}


def test_a_rule_that_does_not_convert_is_an_info_finding(tmp_path, targets):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules/placeholder.yml").write_text(PLACEHOLDER, encoding="utf-8")
    catalog = build_catalog([tmp_path / "rules"])
    found = conversions.convert(conversions.jobs_of(catalog.entries), targets, None, workers=1)
    (converted,) = found.values()
    assert all(conversion.queries == () and "placeholder" in conversion.error for conversion in converted)
    problems = conversions.findings(catalog.entries, found)
    assert [p.code for p in problems] == [Code.CONVERSION_PREFIX + name for name in ("splunk", "lucene", "esql", "kusto")]
    assert all(p.severity is Severity.INFO and p.path.endswith("placeholder.yml") and p.line == 1 for p in problems)
    assert "no Splunk SPL query: " in problems[0].message


def test_a_backend_s_own_failure_names_what_it_was_doing_not_a_rule_none(targets):
    """pySigma adds "(while converting rule None)" to errors that are not its own (a rule read from
    text has no source); the message keeps what it was doing."""
    field_reference = NETCAT.replace("CommandLine|contains: ' -e '", "CommandLine|fieldref: ParentCommandLine")
    found = by_target(convert_texts({"ref": field_reference}, targets)["ref"])
    assert found["kusto"].error == "Field reference expression is not supported by backend. (while converting)"
    assert all("None" not in (conversion.error or "") for conversion in found.values())


KEYWORDS = """\
title: Keywords of a tool
id: 8b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e
status: test
logsource:
  product: windows
  service: system
detection:
  keywords:
    - 'mimikatz'
    - 'sekurlsa'
  condition: keywords
level: high
"""


def test_rules_converted_together_get_what_pysigma_gives_each_alone(targets):
    """The rules of a chunk share each backend's processing pipeline (put together once); each
    must get exactly what pySigma's own Backend.convert gives it alone, errors included."""
    import yaml
    from sigma.collection import SigmaCollection

    texts = {"ref": REFERENCE.read_text(encoding="utf-8"), "nc": NETCAT, "placeholder": PLACEHOLDER, "keywords": KEYWORDS,
             "nc2": NETCAT.replace("6f0e2b1a", "6f0e2b1b").replace("' -e '", "' -c '")}
    together = convert_texts(texts, targets)
    plugins = conversion_worker.plugins()
    for slug, text in texts.items():
        for conversion in together[slug]:
            target = conversions.TARGETS[conversion.target]
            collection = SigmaCollection.from_dicts(list(yaml.safe_load_all(text)))
            pipeline = None if conversion.pipeline == "none" else plugins.pipelines[conversion.pipeline]()
            try:
                alone = tuple(str(query) for query in plugins.backends[target.backend](processing_pipeline=pipeline).convert(collection))
            except Exception as error:  # noqa: BLE001 - what pySigma says is what the page must say
                assert conversion.queries == () and conversion.error == conversion_worker._message(error), (slug, conversion)
            else:
                assert conversion.error is None and conversion.queries == alone, (slug, conversion)
    errors = {(slug, c.target) for slug, converted in together.items() for c in converted if c.error}
    assert ("keywords", "esql") in errors and ("placeholder", "splunk") in errors and ("nc", "splunk") not in errors


def test_a_backend_that_cannot_set_up_its_pipeline_fails_each_rule_not_the_chunk(targets, monkeypatch):
    from sigma.backends.splunk import SplunkBackend

    def broken(self, output_format=None):
        raise ValueError("no pipeline today")

    monkeypatch.setattr(SplunkBackend, "init_processing_pipeline", broken)
    found = convert_texts({"nc": NETCAT, "ref": REFERENCE.read_text(encoding="utf-8")}, targets)
    for converted in found.values():
        splunk, *others = converted
        assert splunk.error == "no pipeline today" and splunk.queries == ()
        assert all(conversion.error is None for conversion in others)


def test_a_correlation_converts_where_the_backend_supports_correlations(targets):
    catalog = build_catalog([PROJECT / "rules/correlations", PROJECT / "rules/windows"])
    correlation = next(e for e in catalog.entries if e.document.source.path.endswith("corr_win_network_logon_spray.yml"))
    found = by_target(conversions.convert(conversions.jobs_of([correlation]), targets, None, workers=1)[correlation.slug])
    assert "| stats dc(TargetUserName) as value_count by _time IpAddress" in found["splunk"].queries[0]
    assert found["kusto"].error == "Backend does not support correlation rules."


def test_a_second_run_converts_nothing(tmp_path, targets, monkeypatch):
    texts = {"ref": REFERENCE.read_text(encoding="utf-8"), "nc": NETCAT}
    first = convert_texts(texts, targets, tmp_path / "cache")
    assert len(list((tmp_path / "cache/conversions").glob("*.json"))) == 4
    ran = []
    monkeypatch.setattr(conversion_worker, "_convert_target", lambda *args: ran.append(args))
    assert convert_texts(texts, targets, tmp_path / "cache") == first
    assert ran == []
    # a changed rule is converted again, the other comes from the cache
    monkeypatch.undo()
    changed = convert_texts({**texts, "nc": NETCAT.replace("' -e '", "' -c '")}, targets, tmp_path / "cache")
    assert changed["nc"][0].queries == ('Image="*/nc" CommandLine="* -c *"',) and changed["ref"] == first["ref"]


def test_rules_given_while_they_are_read_are_converted_meanwhile(targets):
    """The build gives each rule text to the run as it reads it: the workers start converting
    before the catalog is complete, and the end result is that of one conversion of every job."""
    texts = {f"r{n}": NETCAT.replace("/nc", f"/nc{n}") for n in range(conversions.IN_PROCESS + conversions.CHUNK)}
    jobs = [conversions.Job(slug, text) for slug, text in texts.items()]
    with conversions.Run(targets, None, workers=2) as run:
        for job in jobs[: conversions.IN_PROCESS + 1]:
            run.add(job.text)
            run.add(job.text)  # a text read twice (a copied file) is converted once
        assert len(run._sent) == 1 and not run._sent[0].cancelled()  # a chunk is on its way
        found = run.finish(jobs)
    assert found == convert_texts(texts, targets)
    assert found["r70"][0].queries == ('Image="*/nc70" CommandLine="* -e *"',)


def test_a_worker_pool_lost_while_the_rules_are_read_costs_the_queries_only(tmp_path, monkeypatch, caplog):
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from catalog.site.output import LoadCache
    from catalog.site.queries import convert_catalog, read_documents, start_conversions

    def lost(self, *args, **kwargs):
        raise BrokenProcessPool("a worker process ended abruptly")

    monkeypatch.setattr(ProcessPoolExecutor, "submit", lost)
    (tmp_path / "rules").mkdir()
    for n in range(conversions.IN_PROCESS + conversions.CHUNK):
        (tmp_path / f"rules/nc{n}.yml").write_text(NETCAT.replace("/nc", f"/nc{n}").replace("6f0e2b1a", f"{n:08x}"), encoding="utf-8")
    with start_conversions(["splunk"], tmp_path / "cache") as run:
        catalog = build_catalog([tmp_path / "rules"], load=lambda roots: LoadCache().load(roots, each=read_documents(run)))
        assert len(catalog.entries) == conversions.IN_PROCESS + conversions.CHUNK  # the reading went on
        assert convert_catalog(catalog, run) == {}
    assert "conversions left out: BrokenProcessPool: a worker process ended abruptly" in caplog.text


def test_worker_processes_give_the_same_queries(tmp_path, targets):
    texts = {f"r{n}": NETCAT.replace("/nc", f"/nc{n}") for n in range(conversions.IN_PROCESS + 1)}
    found = convert_texts(texts, targets, None, workers=2)
    assert found["r7"][0].queries == ('Image="*/nc7" CommandLine="* -e *"',)
    assert len(found) == len(texts)


def test_no_socket_opens(monkeypatch, targets):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled by the test")

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    fresh = conversions.resolve_targets(["splunk", "lucene", "esql", "kusto"])  # plugin discovery too
    found = convert_texts({"ref": REFERENCE.read_text(encoding="utf-8"), "nc": NETCAT}, fresh)
    assert attempts == []
    assert all(conversion.error is None for converted in found.values() for conversion in converted)


def test_an_absent_backend_is_a_clear_setup_error():
    with pytest.raises(conversions.ConversionSetupError, match="'no-such-backend' is not installed"):
        conversions.resolve_targets(["no-such-backend"])
    (eql,) = conversions.resolve_targets(["eql:ecs_windows"])  # another installed backend, by name
    assert (eql.backend, eql.windows_pipelines) == ("eql", ("ecs_windows",))


def test_the_site_build_logs_one_notice_without_the_backend(tmp_path, caplog):
    from catalog.site.queries import convert_catalog, start_conversions

    caplog.set_level(logging.INFO)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules/nc.yml").write_text(NETCAT, encoding="utf-8")
    catalog = build_catalog([tmp_path / "rules"])
    assert convert_catalog(catalog, start_conversions(["splunk", "no-such-backend"], tmp_path / "cache")) == {}
    notices = [r for r in caplog.records if "conversions" in r.getMessage()]
    assert len(notices) == 1 and "no-such-backend" in notices[0].getMessage()
    assert not any(p.code.startswith(Code.CONVERSION_PREFIX) for p in catalog.problems)


def build_site(folder: Path, number: int = 1) -> None:
    """The site of one rule with queries for two targets, built into `site<number>`."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    if not (folder / "mkdocs.yml").exists():
        (folder / "rules").mkdir()
        (folder / "docs").mkdir()
        (folder / "rules/nc.yml").write_text(NETCAT, encoding="utf-8")
        (folder / "mkdocs.yml").write_text(
            "site_name: t\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules: [rules]\n"
            "      conversions: [splunk, kusto]\n", encoding="utf-8")
    build(load_config(str(folder / "mkdocs.yml"), site_dir=str(folder / f"site{number}")))


def test_the_site_build_gives_each_rule_to_the_conversions_as_it_reads_it(tmp_path, monkeypatch):
    events = []
    add, finish = conversions.Run.add, conversions.Run.finish
    monkeypatch.setattr(conversions.Run, "add", lambda self, text: events.append("add") or add(self, text))
    monkeypatch.setattr(conversions.Run, "finish", lambda self, jobs: events.append("finish") or finish(self, jobs))
    build_site(tmp_path)
    assert events[:2] == ["add", "finish"]  # given while the rules were read, before the build asked for the queries


def test_a_second_site_build_converts_nothing(tmp_path, monkeypatch):
    ran = []
    real = conversion_worker._convert_target
    monkeypatch.setattr(conversion_worker, "_convert_target", lambda documents, target: ran.append(target.name) or real(documents, target))
    for number in (1, 2):
        build_site(tmp_path, number)
    assert ran == ["splunk", "kusto"]  # the first build only
    for number in (1, 2):
        page = next((tmp_path / f"site{number}/rules").glob("*/index.html")).read_text(encoding="utf-8")
        assert "Image=&#34;*/nc&#34; CommandLine=&#34;* -e *&#34;" in page


def test_a_regular_expression_whose_check_is_skipped_is_always_valid():
    """The workers skip pySigma's compilation of regular expressions made of plain values: every
    text the shortcut accepts must compile, whatever the characters around it."""
    import random
    import re

    from sigma.types import SigmaString

    alphabet = ["\\", ".", "*", "+", "?", "^", "$", "[", "]", "(", ")", "{", "}", "|", "a", "q", "E", "Z", "0", "é", "\n", " ", "-"]
    texts = ["".join(random.Random(seed).choices(alphabet, k=random.Random(-seed).randint(0, 7))) for seed in range(40_000)]
    texts += [str(SigmaString(value).to_regex(extra).regexp) for value in ("C:\\Windows\\*.exe", "a?b*c", "(x)|[y]{2}$^", "\\*lit\\?", "trailing\\")
              for extra in ("", "/", '"<>')]
    skipped = 0
    for text in texts:
        if conversion_worker._PLAIN_REGEX.fullmatch(text) is not None:
            re.compile(text)  # raises if the shortcut let an invalid expression through
            skipped += 1
    assert skipped > 1000 and any(conversion_worker._PLAIN_REGEX.fullmatch(t) is None for t in ("\\q", ".**", "a(", "x\\"))


def test_a_rule_s_invalid_regular_expression_is_still_reported(targets):
    invalid = NETCAT.replace("CommandLine|contains: ' -e '", "CommandLine|re: ' -e ((x'")
    plain = NETCAT.replace("CommandLine|contains: ' -e '", "CommandLine|re: ' -e .*x'")
    found = convert_texts({"invalid": invalid, "plain": plain}, targets)
    assert all("Regular expression ' -e ((x' is invalid" in c.error for c in found["invalid"])
    assert by_target(found["plain"])["splunk"].queries == ('Image="*/nc"\n| regex CommandLine=" -e .*x"',)


@needs_corpus
@pytest.mark.corpus
def test_sigmahq_queries_are_those_pysigma_gives_with_its_own_regex_check(targets, monkeypatch):
    from sigma.types import SigmaRegularExpression

    files = sorted(CORPUS.glob("rules*/windows/process_creation/*.yml"))[::8]
    texts = {str(path): path.read_text(encoding="utf-8") for path in files}
    shortcut = convert_texts(texts, targets)
    monkeypatch.setattr(SigmaRegularExpression, "compile", SigmaRegularExpression.compile.__wrapped__)
    assert convert_texts(texts, targets) == shortcut and len(texts) > 100
