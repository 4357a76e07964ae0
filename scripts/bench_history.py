"""Benchmark: the rule history step on a SigmaHQ-history-sized repository (4,000 rule files, 30,000 commits).

The repository is synthesised with one `git fast-import` stream (seconds, not 30,000 `git commit`
calls): the first 4,000 commits add one rule each, the others change one to three rules (a value,
the level, or a move to another folder). Then it times what a build adds:

- the history: one pass over git (`git rev-list` + `git diff-tree --stdin`, in parallel slices)
  parsed into every file's changes (cold), then the cached log parsed again (HEAD unchanged, the
  usual rebuild), then after one new commit (only it is read);
- the analysis diff of the commits a rule page shows (bounded per build, cached by blob pair);

Target: the history step (history + analysis diff) adds under 3 s to a cold build, and is cached
by HEAD.  Usage: python scripts/bench_history.py [files] [commits]
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from catalog.history import RepositoryHistory, load_history  # noqa: E402
from catalog.revisions import BUDGET, PER_FILE, describe_revisions  # noqa: E402

FOLDERS = ("windows/process_creation", "windows/registry", "linux/auditd", "cloud/aws", "network/dns")


def rule_text(number: int, version: int, level: str) -> bytes:
    return (
        f"title: Synthetic Rule {number}\nid: 00000000-0000-4000-8000-{number:012d}\nstatus: test\nlevel: {level}\n"
        f"date: 2020-01-01\nmodified: 2020-01-0{1 + version % 9}\n"
        f"logsource:\n    product: windows\n    category: process_creation\n"
        f"detection:\n    selection:\n        Image|endswith: '\\\\tool{number}.exe'\n"
        f"        CommandLine|contains: ' -v{version} '\n    condition: selection\n"
    ).encode()


def fast_import_stream(files: int, commits: int, seed: int = 13) -> bytes:
    random.seed(seed)
    out: list[bytes] = []
    paths: dict[int, str] = {}
    versions = [0] * files
    start = 1_500_000_000

    def commit(index: int, message: str, operations: list[bytes]) -> None:
        when = start + index * 3600
        out.append(f"commit refs/heads/main\nmark :{index + 1}\ncommitter Bench <bench@example.org> {when} +0000\n".encode())
        out.append(f"data {len(message)}\n{message}\n".encode())
        if index:
            out.append(f"from :{index}\n".encode())
        out.extend(operations)

    def modify(path: str, content: bytes) -> bytes:
        return f"M 100644 inline {path}\ndata {len(content)}\n".encode() + content + b"\n"

    for index in range(commits):
        if index < files:
            paths[index] = f"rules/{FOLDERS[index % len(FOLDERS)]}/rule_{index}.yml"
            commit(index, f"add rule {index}", [modify(paths[index], rule_text(index, 0, "high"))])
            continue
        operations = []
        for number in random.sample(range(files), random.randint(1, 3)):
            if random.random() < 0.01:  # a move to another folder
                new = f"rules/{random.choice(FOLDERS)}/moved_{number}_{index}.yml"
                operations.append(f"R {paths[number]} {new}\n".encode())
                paths[number] = new
            else:
                versions[number] += 1
                operations.append(modify(paths[number], rule_text(number, versions[number], random.choice(("high", "medium")))))
        commit(index, f"tune rules ({index})", operations)
    return b"".join(out)


def main() -> None:
    files = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    commits = int(sys.argv[2]) if len(sys.argv) > 2 else 30000
    with tempfile.TemporaryDirectory(prefix="bench-history-") as folder:
        repo, cache = Path(folder) / "repo", Path(folder) / "cache"
        started = time.perf_counter()
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=fast_import_stream(files, commits), check=True)
        subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, check=True)
        print(f"synthetic repository: {files} files, {commits} commits in {time.perf_counter() - started:.1f} s; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

        timings, notes = {}, {}
        for label in ("history, cold (one pass over git)", "history, cached by HEAD"):
            mark, before = time.perf_counter(), os.times()
            history = load_history([repo / "rules"], cache)
            timings[label] = time.perf_counter() - mark
            after = os.times()  # the git processes' CPU time, to read the wall time against the machine's load
            git_cpu = after.children_user + after.children_system - before.children_user - before.children_system
            notes[label] = f" (git processes: {git_cpu:.2f} s of CPU)"
        assert isinstance(history, RepositoryHistory), history
        shown = [change for found in history.files.values() for change in found.changes[:PER_FILE]]
        mark = time.perf_counter()
        revisions = describe_revisions(history, shown, cache)
        first_diff = f"analysis diff of shown commits, first build ({len(revisions)} at most {BUDGET})"
        timings[first_diff] = time.perf_counter() - mark
        while len(revisions) < len({(c.old_blob, c.new_blob) for c in shown if c.old_blob and c.new_blob and c.content_changed}):
            revisions = describe_revisions(history, shown, cache)  # the later builds fill the cache
        mark = time.perf_counter()
        revisions = describe_revisions(history, shown, cache)
        timings["analysis diff of shown commits, all cached"] = time.perf_counter() - mark
        (repo / "rules" / "windows/registry/rule_1.yml").write_text(rule_text(1, 99, "low").decode(), encoding="utf-8")
        subprocess.run(["git", "commit", "-q", "-am", "one more"], cwd=repo, check=True,
                       env={**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.org",
                            "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.org"})
        mark = time.perf_counter()
        load_history([repo / "rules"], cache)
        timings["history after one new commit (only it is read)"] = time.perf_counter() - mark
        changes = sum(len(found.changes) for found in history.files.values())
        print(f"{len(history.files)} files at HEAD, {changes} file changes, {len(history.commits)} commits; "
              f"{len(revisions)} revisions analysed (the newest {PER_FILE} changes of each file)")
        for label, seconds in timings.items():
            print(f"  {label}: {seconds:.2f} s{notes.get(label, '')}")
        print(f"load average {os.getloadavg()[0]:.2f}")
        cold = timings["history, cold (one pass over git)"] + timings[first_diff]
        print(f"history step added to a cold build: {cold:.2f} s (target < 3 s)")
        print(f"history step added to a rebuild, HEAD unchanged: "
              f"{timings['history, cached by HEAD'] + timings['analysis diff of shown commits, all cached']:.2f} s")


if __name__ == "__main__":
    main()
