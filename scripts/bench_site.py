#!/usr/bin/env python3
"""Site build benchmark: the SigmaHQ catalog against a plain MkDocs + Material site of as many pages.

In one run, each in a fresh `mkdocs build` subprocess:

1. the catalog site of the SigmaHQ corpus (the sigma-catalog plugin, cold build cache), read from
   a copy of the corpus in the work folder;
2. the baseline: a plain MkDocs + Material site (default plugins, so its search index too) of as many
   simple Markdown pages as the catalog has rule pages, each about as large as a rule page's
   content (the rule's title, description, a small table and its YAML in a highlighted code block),
   kept out of the navigation like our rule pages;
3. the catalog at 4x the corpus (every rule copied three more times with new ids and titles), to see
   that time, memory and output grow linearly;
4. `mkdocs serve --dirty`: edit one rule five times each way (its title; its technique tag, so it
   moves between technique pages; an indicator value, so counts on other rules' pages change), time
   from the write until the served page shows the edit; then compare the served site with a clean
   build of the edited corpus, byte for byte.

The catalog and the baseline are built in turn, --rounds times each (after one catalog build that
counts its pages): each round's ratios, then the medians. A shared machine's speed drifts by a fifth
within minutes; one build of each compared a fast moment with a slow one.

Printed: wall time, peak memory (RUSAGE_CHILDREN of each build), output size and file count, their
ratios, the average rule page, the search index (raw and gzipped), the serve edit times (median
of each kind) and the comparison, and the load average of the machine.

With --conversions, also the catalog without and with queries for four targets (splunk, lucene,
esql, kusto), each cold and warm, --repeat times in turn, with the medians of the ratios, the CPU
time the conversions add, and the least cold ratio that CPU time allows on this machine's CPUs.

    python scripts/bench_site.py [--corpus ../shared/corpora/sigmahq] [--work DIR] [--rounds N] [--skip-4x] [--skip-serve]
                                 [--conversions [--repeat N]]
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import gzip
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FOLDERS = ["rules", "rules-emerging-threats", "rules-threat-hunting", "rules-placeholder", "rules-compliance",
           "deprecated", "unsupported"]
ENV = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONDONTWRITEBYTECODE="1")

#: Runs a command and reports its wall time and its resource usage (the largest process of its tree).
_MEASURE = r"""
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stderr.write(done.stderr[-4000:] if done.returncode else "")
print(json.dumps({"wall": wall, "rss_kb": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime, "rc": done.returncode}))
"""


@dataclass
class Build:
    name: str
    wall: float
    cpu: float
    rss_mb: float
    bytes: int
    files: int
    site: Path

    @property
    def mb(self) -> float:
        return self.bytes / 1e6


def build(name: str, config: Path, site: Path) -> Build:
    shutil.rmtree(site, ignore_errors=True)
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(BIN / "mkdocs"), "build", "-q", "-f", str(config), "-d", str(site)],
        capture_output=True, text=True, env=ENV,
    )
    if result.returncode or not result.stdout.strip():
        sys.exit(f"{name}: the build failed:\n{result.stderr}")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    if data["rc"]:
        sys.exit(f"{name}: mkdocs exited with {data['rc']}:\n{result.stderr}")
    total = files = 0
    for directory, _, names in os.walk(site):
        for file_name in names:
            total += os.path.getsize(os.path.join(directory, file_name))
            files += 1
    return Build(name, data["wall"], data["cpu"], data["rss_kb"] / 1024, total, files, site)


# --- projects ---------------------------------------------------------------------------------------


def catalog_project(root: Path, folders: list[Path], conversions: bool = False) -> Path:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    listed = "".join(f"        - {folder}\n" for folder in folders)
    config = root / "mkdocs.yml"
    config.write_text(
        "site_name: SigmaHQ catalog\ntheme:\n  name: material\n  font: false\n"
        "plugins:\n  - sigma-catalog:\n      cache_dir: .cache/sigma-catalog\n"
        + ("      conversions: [splunk, lucene, esql, kusto]\n" if conversions else "") + "      rules:\n" + listed,
        encoding="utf-8",
    )
    return config


def empty_cache(config: Path) -> None:
    """Empty the build cache of the catalog project at `config` (`catalog_project` puts it there):
    the next build is cold."""
    shutil.rmtree(config.parent / ".cache", ignore_errors=True)


def _field(text: str, key: str) -> str:
    match = re.search(rf"^{key}:\s*(.*)$", text, re.M)
    value = match.group(1).strip().strip("'\"") if match else ""
    return value if value not in ("|", ">", "|-", ">-") else ""


def baseline_project(root: Path, rule_files: list[Path], pages: int) -> Path:
    """As many plain Markdown pages as the catalog has rule pages, each built from one rule file."""
    docs = root / "docs"
    (docs / "pages").mkdir(parents=True, exist_ok=True)
    (docs / "index.md").write_text("# Baseline\n\nPlain Markdown pages of the same number and size.\n", encoding="utf-8")
    for number in range(pages):
        text = rule_files[number % len(rule_files)].read_text(encoding="utf-8-sig", errors="replace")
        title = _field(text, "title") or f"Page {number}"
        description = _field(text, "description") or "A page of the baseline site."
        keys = re.findall(r"^([a-z]+):", text, re.M)
        table = "| Key | Position |\n|---|---|\n" + "".join(f"| {key} | {index} |\n" for index, key in enumerate(keys))
        fence = "````" if "```" in text else "```"
        (docs / "pages" / f"p{number:05d}.md").write_text(
            f"# {title}\n\n{description}\n\n## Summary\n\n{table}\n## Rule body\n\n{fence}yaml\n{text}\n{fence}\n",
            encoding="utf-8",
        )
    config = root / "mkdocs.yml"
    config.write_text(
        "site_name: Baseline\ntheme:\n  name: material\n  font: false\nnav:\n  - index.md\nnot_in_nav: |\n  /pages/\n"
        "markdown_extensions:\n  - tables\n  - pymdownx.highlight\n  - pymdownx.superfences\n",
        encoding="utf-8",
    )
    return config


_ID = re.compile(r"^(id:\s*)([0-9A-Fa-f-]{8,})\s*$", re.M)
_TITLE = re.compile(r"^(title:[ \t]*)(.+?)[ \t]*$", re.M)


def _retitle(match: re.Match, copy: int) -> str:
    value = match.group(2)
    if value[:1] in "'\"" and value[-1:] == value[:1] and len(value) > 1:
        return f"{match.group(1)}{value[:-1]} (copy {copy}){value[-1]}"
    return f"{match.group(1)}{value} (copy {copy})"


def multiply_corpus(corpus: Path, target: Path, copies: int) -> list[Path]:
    """`copies` copies of the corpus folders; every copy after the first with new ids and titles."""
    roots = []
    for copy in range(copies):
        for name in FOLDERS:
            source = corpus / name
            if not source.is_dir():
                continue
            destination = target / f"copy{copy}" / name
            roots.append(destination)
            for path in source.rglob("*"):
                if not path.is_file():
                    continue
                out = destination / path.relative_to(source)
                out.parent.mkdir(parents=True, exist_ok=True)
                if copy == 0 or path.suffix not in (".yml", ".yaml"):
                    shutil.copyfile(path, out)
                    continue
                text = path.read_text(encoding="utf-8-sig", errors="surrogateescape")
                text = _ID.sub(lambda m: m.group(1) + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{m.group(2)}/{copy}")), text)
                text = _TITLE.sub(lambda m: _retitle(m, copy), text)
                out.write_text(text, encoding="utf-8", errors="surrogateescape")
    return roots


# --- serve ------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode("utf-8", errors="replace")
    except OSError:
        return None


@dataclass
class Edit:
    """One kind of edit of a rule: `make(original, number)` gives the new text and what its page then shows."""

    kind: str
    make: Callable[[str, int], tuple[str, str]]


_TECHNIQUE_TAG = re.compile(r"^(\s*-\s*attack\.)(t\d{4}(?:\.\d{3})?)\s*$", re.M | re.I)
_ENDS_WITH = re.compile(r"^(\s*-?\s*\w+\|endswith:\s*')([^'\n]+)(')", re.M)
#: Techniques the edited rule moves to (one per edit; none of them on a whoami-like rule).
_NEW_TECHNIQUES = ["T1003.001", "T1005", "T1012", "T1018", "T1049", "T1057", "T1082", "T1083"]


def _edit_title(text: str, number: int) -> tuple[str, str]:
    marker = f"EDITED{number}x{os.getpid()}"
    return _TITLE.sub(lambda m: f"{m.group(1)}{marker} {m.group(2)}", text, count=1), marker


def _edit_tags(text: str, number: int) -> tuple[str, str]:
    technique = _NEW_TECHNIQUES[number % len(_NEW_TECHNIQUES)]
    return _TECHNIQUE_TAG.sub(lambda m: m.group(1) + technique.lower(), text, count=1), technique


def _edit_indicators(text: str, number: int) -> tuple[str, str]:
    marker = f"ind{number}x{os.getpid()}"
    return _ENDS_WITH.sub(lambda m: m.group(1) + marker + m.group(2) + m.group(3), text, count=1), marker


EDITS = [Edit("title", _edit_title), Edit("tags", _edit_tags), Edit("indicators", _edit_indicators)]


def edited_rule(root: Path) -> Path:
    """A rule with an id, an ATT&CK technique tag and an `|endswith:` value that other rules share."""
    for path in sorted(root.rglob("*.yml")):
        text = path.read_text(encoding="utf-8")
        if _ID.search(text) and _TECHNIQUE_TAG.search(text) and _ENDS_WITH.search(text):
            return path
    sys.exit("no rule to edit (with an id, a technique tag and an |endswith: value)")


def serve_edit_times(config: Path, rule: Path, slug: str, dirty: bool, edits: int = 5,
                     compare_with: Callable[[str, Path], list[str]] | None = None) -> tuple[dict[str, list[float]], float, list[str] | None]:
    """Start `mkdocs serve`, edit `rule` `edits` times for each kind of edit: seconds from each
    write until the server tells browsers to reload (its "Reloading browsers" line) with the
    page showing the edit. With `compare_with`, the served site after the last edit is compared
    with a clean build of the edited corpus (the differences found are returned).

    The page is fetched once per reload, not polled: a browser waits on live reload the same way,
    and polling the server while it rebuilds would slow the rebuild down."""
    port = _free_port()
    command = [str(BIN / "mkdocs"), "serve", "-f", str(config), "-a", f"127.0.0.1:{port}"]
    if dirty:
        command.append("--dirty")
    log_path = config.parent / f"serve-{'dirty' if dirty else 'clean'}.log"
    # mkdocs serve builds into a new temporary folder: in one of ours, to compare it afterwards
    temporary = config.parent / "tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(ENV, TMPDIR=str(temporary)),
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}/rules/{slug}/"
    original = rule.read_text(encoding="utf-8")

    def reloads() -> int:
        return log_path.read_text(errors="replace").count("Reloading browsers")

    try:
        started = time.perf_counter()
        while "Serving on" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.perf_counter() - started > 900:
                sys.exit(f"mkdocs serve did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        first = time.perf_counter() - started
        time.sleep(3)  # let the first build's background exports finish
        times: dict[str, list[float]] = {}
        for edit in EDITS:
            for number in range(edits):
                seen = reloads()
                text, shown = edit.make(original, number)
                rule.write_text(text, encoding="utf-8")
                edited = time.perf_counter()
                while True:
                    if reloads() > seen:
                        body = _get(url)
                        if body is not None and shown in body:
                            times.setdefault(edit.kind, []).append(time.perf_counter() - edited)
                            break
                        seen = reloads()
                    if time.perf_counter() - edited > 300:
                        sys.exit(f"the edit never showed:\n{log_path.read_text()[-3000:]}")
                    time.sleep(0.02)
                time.sleep(3)  # as a person would: read the page, then edit again
        differences = None
        served = next(temporary.glob("mkdocs_*"), None)
        if compare_with is not None and served is not None:
            # catalog.json, the CSV and the search index are written after the update, in the background
            waited = time.perf_counter()
            while shown not in (served / "exports/catalog.json").read_text(encoding="utf-8", errors="replace"):
                if time.perf_counter() - waited > 300:
                    sys.exit("catalog.json never showed the last edit")
                time.sleep(0.5)
            time.sleep(2)
            differences = compare_with(f"http://127.0.0.1:{port}/", served)
        return times, first, differences
    finally:
        rule.write_text(original, encoding="utf-8")
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def site_differences(reference: Path, served: Path) -> list[str]:
    """Files that are not byte for byte the same in both sites (the build cache aside)."""
    def listing(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}

    ours, theirs = listing(served), listing(reference)
    found = [f"only served: {name}" for name in sorted(ours - theirs)] + [f"only built: {name}" for name in sorted(theirs - ours)]
    found += [f"differs: {name}" for name in sorted(ours & theirs) if (served / name).read_bytes() != (reference / name).read_bytes()]
    return found


# --- report -----------------------------------------------------------------------------------------


def rule_page_stats(site: Path) -> tuple[int, float, float]:
    pages = list((site / "rules").glob("*/index.html"))
    sizes = [page.stat().st_size for page in pages]
    return len(pages), statistics.mean(sizes) / 1024, max(sizes) / 1024


def compare_builds(catalog_config: Path, baseline_config: Path | None, work: Path, rounds: int) -> tuple[Build, Build | None]:
    """The catalog and the baseline built in turn, `rounds` times each: a shared machine's speed
    drifts by a fifth within minutes, so one build of each can compare a fast moment with a slow
    one. Each round is printed; the builds returned carry the medians of wall and CPU time."""
    catalogs: list[Build] = []
    baselines: list[Build] = []
    for number in range(1, rounds + 1):
        empty_cache(catalog_config)  # a cold build, each time
        catalogs.append(build("catalog", catalog_config, work / "catalog/site"))
        line = f"round {number}: catalog {catalogs[-1].wall:.2f} s wall, {catalogs[-1].cpu:.2f} s CPU"
        if baseline_config is not None:
            baselines.append(build("baseline", baseline_config, work / "baseline/site"))
            line += (f"; baseline {baselines[-1].wall:.2f} s, {baselines[-1].cpu:.2f} s"
                     f"; ratios {catalogs[-1].wall / baselines[-1].wall:.3f} wall, {catalogs[-1].cpu / baselines[-1].cpu:.3f} CPU")
        print(line, flush=True)

    def median(builds: list[Build]) -> Build:
        return dataclasses.replace(builds[-1], wall=statistics.median(b.wall for b in builds), cpu=statistics.median(b.cpu for b in builds))

    catalog = median(catalogs)
    print(f"catalog:  {catalog.wall:.2f} s, {catalog.rss_mb:.0f} MB, {catalog.mb:.1f} MB in {catalog.files} files")
    if not baselines:
        return catalog, None
    baseline = median(baselines)
    print(f"baseline: {baseline.wall:.2f} s, {baseline.rss_mb:.0f} MB, {baseline.mb:.1f} MB in {baseline.files} files")
    print(f"median of the rounds' ratios: {statistics.median(c.wall / b.wall for c, b in zip(catalogs, baselines)):.3f} wall, "
          f"{statistics.median(c.cpu / b.cpu for c, b in zip(catalogs, baselines)):.3f} CPU")
    return catalog, baseline


def report(catalog: Build, baseline: Build | None, big: Build | None) -> None:
    print()
    print(f"{'':28}{'catalog':>14}{'baseline':>14}{'ratio':>9}")

    def row(label: str, ours: float, theirs: float | None, fmt: str = "{:.2f}") -> None:
        ratio = f"{ours / theirs:.2f}" if theirs else ""
        print(f"{label:28}{fmt.format(ours):>14}{(fmt.format(theirs) if theirs is not None else ''):>14}{ratio:>9}")

    row("wall time (s)", catalog.wall, baseline.wall if baseline else None)
    row("CPU time (s)", catalog.cpu, baseline.cpu if baseline else None)
    row("peak memory (MB)", catalog.rss_mb, baseline.rss_mb if baseline else None, "{:.0f}")
    row("output (MB)", catalog.mb, baseline.mb if baseline else None, "{:.1f}")
    row("output files", catalog.files, baseline.files if baseline else None, "{:.0f}")
    count, average, largest = rule_page_stats(catalog.site)
    print(f"\nrule pages: {count}, average {average:.1f} KB, largest {largest:.1f} KB")
    if baseline:
        pages = list((baseline.site / "pages").glob("*/index.html"))
        print(f"baseline pages: {len(pages)}, average {statistics.mean(p.stat().st_size for p in pages) / 1024:.1f} KB"
              f"; its search index {(baseline.site / 'search/search_index.json').stat().st_size / 1e6:.1f} MB")
    index = (catalog.site / "assets/sigma-catalog/search-index.json").read_bytes()
    print(f"search index: {len(index) / 1e6:.2f} MB, {len(gzip.compress(index)) / 1e6:.2f} MB gzipped")
    if big:
        print(f"\n4x corpus: wall {big.wall:.2f} s ({big.wall / catalog.wall:.2f}x), CPU {big.cpu:.2f} s "
              f"({big.cpu / catalog.cpu:.2f}x), peak memory {big.rss_mb:.0f} MB ({big.rss_mb / catalog.rss_mb:.2f}x), "
              f"output {big.mb:.1f} MB ({big.mb / catalog.mb:.2f}x), {big.files} files ({big.files / catalog.files:.2f}x)")
        count4, average4, _ = rule_page_stats(big.site)
        print(f"4x rule pages: {count4} ({count4 / count:.2f}x), average {average4:.1f} KB")


def compare_conversions(work: Path, folders: list[Path], repeat: int) -> None:
    """The catalog without and with queries for the four targets (needs the `conversions` extra),
    each cold (empty build cache: every rule converted) then warm (cache filled), `repeat` times in
    turn; the medians of the ratios. Each build starts after the last one's writes reached the disk
    (os.sync), so that one build's writing does not slow the next, and every build writes into the
    same site folder: where a folder's files land on the disk made writing one site 2-4 times slower
    than writing another on this machine's ext4 (the same build, measured in both folders)."""
    configs = {"without": catalog_project(work / "plain", folders), "with": catalog_project(work / "queries", folders, conversions=True)}
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    for number in range(repeat):
        for name, config in configs.items():
            empty_cache(config)
            for state in ("cold", "warm"):
                os.sync()
                load = os.getloadavg()[0]
                done = build(f"{name} {state}", config, work / "site")
                walls.setdefault(f"{name} {state}", []).append(done.wall)
                cpus.setdefault(f"{name} {state}", []).append(done.cpu)
                print(f"  run {number + 1}: {name + ' queries, ' + state:24} {done.wall:6.2f} s wall, CPU {done.cpu:6.2f} s "
                      f"(workers included), {done.rss_mb:.0f} MB; load before {load:.1f}", flush=True)
    cold = [q / c for q, c in zip(walls["with cold"], walls["without cold"])]
    warm = [q / c for q, c in zip(walls["with warm"], walls["without warm"])]
    print(f"with the four query targets: cold {statistics.median(walls['with cold']):.2f} s against {statistics.median(walls['without cold']):.2f} s "
          f"(ratio median {statistics.median(cold):.2f}: {', '.join(f'{r:.2f}' for r in cold)}; target at most 2), "
          f"warm {statistics.median(walls['with warm']):.2f} s against {statistics.median(walls['without warm']):.2f} s "
          f"(ratio median {statistics.median(warm):.2f}: {', '.join(f'{r:.2f}' for r in warm)}; target at most 1.10)")
    # the cold build with queries can be no faster than its CPU time spread over every CPU
    added = statistics.median(cpus["with cold"]) - statistics.median(cpus["without cold"])
    floor = statistics.median(cpus["with cold"]) / (os.cpu_count() or 1) / statistics.median(walls["without cold"])
    print(f"  the conversions add {added:.1f} s of CPU ({added / statistics.median(cpus['without cold']):.1f} times the whole build "
          f"without them); on {os.cpu_count()} CPUs the cold ratio cannot be below {floor:.2f}, however well the work overlaps")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared/corpora/sigmahq")
    parser.add_argument("--work", type=Path, help="working folder (default: a new temporary folder, removed afterwards)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-4x", action="store_true")
    parser.add_argument("--skip-serve", action="store_true")
    parser.add_argument("--conversions", action="store_true", help="also the catalog with the four query targets, cold and warm")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the --conversions comparison (default 3; medians printed)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="catalog and baseline builds in turn, this many times each (default 3; medians compared)")
    arguments = parser.parse_args()
    if not arguments.corpus.is_dir():
        print(f"no corpus at {arguments.corpus}: nothing to measure", file=sys.stderr)
        return 0
    work = arguments.work or Path(tempfile.mkdtemp(prefix="bench-site-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        folders = [arguments.corpus / name for name in FOLDERS if (arguments.corpus / name).is_dir()]
        print(f"corpus: {arguments.corpus} ({', '.join(f.name for f in folders)}); work: {work}")
        print(f"load average (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
        # the catalog reads a copy of the corpus in the work folder, as the baseline reads its pages
        # there: rule files left on another disk (or dropped from the page cache) cost reads the
        # baseline never pays
        local = multiply_corpus(arguments.corpus, work / "corpus", 1)
        # the catalog's modules with their bytecode, as MkDocs' and Material's have theirs (pip
        # compiles a package it installs): a checkout run with PYTHONDONTWRITEBYTECODE would
        # otherwise compile them again in every build
        compileall.compile_dir(REPO / "catalog", quiet=1)
        catalog_config = catalog_project(work / "catalog", local)
        baseline_config = None
        if not arguments.skip_baseline:
            rule_files = sorted(p for f in local for p in f.rglob("*.yml"))
            first = build("catalog", catalog_config, work / "catalog/site")
            pages = len(list((first.site / "rules").glob("*/index.html")))
            baseline_config = baseline_project(work / "baseline", rule_files, pages)
        catalog, baseline = compare_builds(catalog_config, baseline_config, work, arguments.rounds)
        big = None
        if not arguments.skip_4x:
            roots = multiply_corpus(arguments.corpus, work / "corpus4x", 4)
            big_config = catalog_project(work / "catalog4x", roots)
            empty_cache(big_config)
            big = build("catalog 4x", big_config, work / "catalog4x/site")
            print(f"4x:       {big.wall:.2f} s, {big.rss_mb:.0f} MB, {big.mb:.1f} MB in {big.files} files")
        report(catalog, baseline, big)
        if arguments.conversions:
            compare_conversions(work, folders, arguments.repeat)
        if not arguments.skip_serve:
            copy = work / "serve/corpus"
            shutil.rmtree(copy, ignore_errors=True)  # a kept --work folder holds the last run's edited copy
            for folder in folders:
                shutil.copytree(folder, copy / folder.name)
            roots = [copy / folder.name for folder in folders]
            config = catalog_project(work / "serve", roots)
            rule = edited_rule(copy / "rules")
            slug = _ID.search(rule.read_text(encoding="utf-8")).group(2).lower()
            print(f"\nmkdocs serve --dirty (./dev serve): editing {rule.relative_to(copy)}; load {os.getloadavg()[0]:.1f}")

            def compare(site_url: str, served: Path) -> list[str]:
                clean = catalog_project(work / "clean", roots)
                clean.write_text(clean.read_text(encoding="utf-8").replace("site_name:", f"site_url: {site_url}\nsite_name:", 1), encoding="utf-8")
                reference = build("clean build", clean, work / "clean/site")
                return site_differences(reference.site, served)

            times, first, differences = serve_edit_times(config, rule, slug, True, compare_with=compare)
            print(f"  first build served after {first:.1f} s")
            for kind, seconds in times.items():
                print(f"  edit {kind:<10} shown after " + ", ".join(f"{t:.2f}" for t in seconds)
                      + f" s (median {statistics.median(seconds):.2f} s)")
            if differences is not None:
                print(f"  served site after the edits against a clean build of the edited corpus: "
                      f"{'byte for byte the same' if not differences else str(len(differences)) + ' files differ'}")
                for line in differences[:20]:
                    print(f"    {line}")
            print(f"  load after: {os.getloadavg()[0]:.1f}")
    finally:
        if arguments.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
