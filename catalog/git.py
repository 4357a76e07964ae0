"""Git plumbing: the repository of a folder, a base revision, its files, the time of HEAD.

Everything reads git's object store through the `git` command (`rev-parse`, `ls-tree`,
`cat-file --batch`): no checkout, no worktree. `catalog.changes` uses it to read the base side of a
change; `catalog build` uses `source_date_epoch` for reproducible dates; `catalog.history` reads
every rule file's history in one pass (`log_with_blobs`: `rev-list`, `diff-tree --stdin`).
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence


class GitError(Exception):
    """Git cannot answer (not installed, unknown revision, not a repository, ...); one line for people."""


def _git(args: Sequence[str], cwd: str | os.PathLike, input: bytes | None = None) -> bytes:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=cwd, input=input, capture_output=True, check=False, timeout=600,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except FileNotFoundError as error:
        raise GitError("git is not installed") from error
    except subprocess.TimeoutExpired as error:
        raise GitError(f"git {args[0]} took too long") from error
    if completed.returncode != 0:
        message = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {' '.join(args[:2])} failed: {message[-1] if message else 'exit ' + str(completed.returncode)}")
    return completed.stdout


def repository_root(path: str | os.PathLike) -> Path:
    """The top folder of the git work tree that holds `path`."""
    start = Path(path)
    probe = start if start.is_dir() else start.parent
    while not probe.exists() and probe != probe.parent:  # a folder the change deleted
        probe = probe.parent
    try:
        top = _git(["rev-parse", "--show-toplevel"], probe).decode("utf-8").strip()
    except GitError as error:
        raise GitError(f"{os.fspath(path)} is not inside a git repository ({error})") from None
    return Path(top)


def resolve_revision(repo: str | os.PathLike, ref: str, merge_base: bool = True) -> tuple[str, bool]:
    """(full commit id, whether it is the merge base with HEAD); GitError for an unknown ref."""
    if not ref or ref.startswith("-"):
        raise GitError(f"'{ref}' is not a git revision")
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], repo).decode().strip()
    except GitError:
        raise GitError(
            f"unknown git revision '{ref}': it is not in this clone (in CI, check out with fetch-depth: 0 "
            f"so the base branch is there; locally, git fetch it first)"
        ) from None
    if merge_base:
        try:
            base = _git(["merge-base", commit, "HEAD"], repo).decode().strip()
        except GitError:  # no common history here (shallow clone, unrelated HEAD): compare with the ref itself
            return commit, False
        if base:
            return base, True
    return commit, False


def export_revision(repo: Path, commit: str, paths: Sequence[str], target: Path) -> None:
    """Write the files under `paths` (relative to `repo`) as they are in `commit` into `target`.

    Read from git's object store (`ls-tree` + `cat-file --batch`): no checkout, no worktree, no
    `.gitattributes` export filters. Symbolic links are recreated after every file is written, so
    nothing is written through one; submodules are skipped.
    """
    existing = [path for path in paths if path in ("", ".") or _git(["ls-tree", commit, "--", path], repo).strip()]
    if not existing:
        return
    listing = _git(["ls-tree", "-r", "-z", "--full-tree", commit, "--", *[p if p not in ("", ".") else "." for p in existing]], repo)
    blobs: list[tuple[str, str, str]] = []  # (mode, sha, path)
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, sha = meta.decode().split()
        if kind != "blob":
            continue
        blobs.append((mode, sha, raw_path.decode("utf-8", "surrogateescape")))
    if not blobs:
        return
    output = _git(["cat-file", "--batch"], repo, input="".join(f"{sha}\n" for _, sha, _ in blobs).encode())
    real_target = target.resolve()
    links: list[tuple[Path, str]] = []
    offset = 0
    for mode, sha, path in blobs:
        header_end = output.index(b"\n", offset)
        size = int(output[offset:header_end].split()[2])
        content = output[header_end + 1 : header_end + 1 + size]
        offset = header_end + 1 + size + 1
        parts = Path(path).parts
        if not parts or ".." in parts or Path(path).is_absolute():
            continue
        destination = target.joinpath(*parts)
        if mode == "120000":
            links.append((destination, content.decode("utf-8", "surrogateescape")))
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        if not destination.parent.resolve().is_relative_to(real_target):
            continue
        with open(destination, "xb") as out:
            out.write(content)
    # Links last, so no file is ever written through one. They are recreated as they are (the
    # loader refuses to read those that lead out of the rule folder, as it does on the head side).
    for destination, link_target in links:
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.parent.resolve().is_relative_to(real_target) and not destination.exists():
            os.symlink(link_target, destination)


def source_date_epoch(path: str | os.PathLike) -> int | None:
    """The committer time of HEAD in the repository holding `path`, for SOURCE_DATE_EPOCH; None outside git."""
    try:
        text = _git(["log", "-1", "--format=%ct"], path).decode().strip()
    except GitError:
        return None
    return int(text) if text.isdigit() else None


def head_commit(repo: str | os.PathLike) -> str:
    """The full id of HEAD (GitError in a repository without commits)."""
    return _git(["rev-parse", "--verify", "HEAD"], repo).decode().strip()


def shallow_edge(repo: str | os.PathLike) -> set[str]:
    """The commits where a shallow clone's history stops (empty for a full clone)."""
    if _git(["rev-parse", "--is-shallow-repository"], repo).decode().strip() != "true":
        return set()
    path = Path(repo, _git(["rev-parse", "--git-path", "shallow"], repo).decode().strip())
    try:
        return set(path.read_text(encoding="ascii").split()) or {"?"}
    except OSError:
        return {"?"}


#: Each commit of a log starts with NUL (an empty token: no file name or record is empty) and this
#: mark, so commits split apart safely whatever characters file names hold.
_COMMIT_MARK = b"\x1e"
_LOG_FORMAT = "--format=%x00%x1e%H%x1f%at%x1f%s"  # NUL, the mark, hash 0x1f author time 0x1f subject
#: `log_with_blobs` reads the history in parallel slices of at least this many commits, at most
#: `_MAX_SLICES` at once (one `git diff-tree` process per slice; a small history is one process).
_SLICE_COMMITS = 2000
_MAX_SLICES = 4


def is_ancestor(repo: str | os.PathLike, older: str, newer: str) -> bool:
    try:
        _git(["merge-base", "--is-ancestor", older, newer], repo)
    except GitError:
        return False
    return True


def log_with_blobs(repo: str | os.PathLike, paths: Sequence[str], since: str | None = None, slices: int | None = None) -> list[bytes]:
    """What `git log -M --raw -z -- paths` shows, in one pass over the whole history: each commit
    (newest first) that changed files under `paths`, with those files, their old and new blob ids
    and renames (-M), NUL-separated (-z) so any file name reads back. With `since`, only the
    commits after it (`since..HEAD`).

    One item a commit: `hash 0x1f author-time 0x1f subject \\0`, then the raw records
    `:mode mode old new STATUS\\0path\\0[new path\\0]` (without the last NUL). Merges list no
    files (their changes are in the commits they merge); a root commit, and a shallow clone's first
    commit, list every file as added.

    It is read as `git rev-list` and `git diff-tree --stdin` over the commits, which compares each
    with its parent only under `paths`: cheaper than `git log -- paths`, which compares trees once
    more per commit. The commit list is cut into contiguous `slices` (by default one per CPU, at
    most a few, one for a small history) read by parallel processes and joined in order (each
    commit's output depends on that commit alone). A history with merges also needs `git log`'s
    simplification (a merged branch whose changes the merge did not keep is left out, and the
    order is its walk's): `git rev-list -- paths` lists those commits, run beside the slices."""
    revision = f"{since}..HEAD" if since else "HEAD"
    pathspec = [p if p not in ("", ".") else "." for p in paths]
    listing = _git(["rev-list", "--parents", "--end-of-options", revision], repo).splitlines()
    commits = [line.split(b" ", 1)[0] for line in listing]
    if not commits:
        return []
    command = ["-c", "core.quotePath=false", "diff-tree", "--stdin", "--root", "-r", "-M", "--raw", "--no-abbrev", "-z",
               "--no-color", _LOG_FORMAT, "--", *pathspec]
    count = slices or max(1, min(_cpus(), _MAX_SLICES, len(commits) // _SLICE_COMMITS))
    size = -(-len(commits) // count)
    parts = [b"\n".join(commits[start:start + size]) + b"\n" for start in range(0, len(commits), size)]
    merges = any(line.count(b" ") > 1 for line in listing)
    with ThreadPoolExecutor(len(parts) + 1) as pool:  # each thread waits on its own git process
        simplified = pool.submit(_git, ["rev-list", "--end-of-options", revision, "--", *pathspec], repo) if merges else None
        found = log_commits(b"".join(pool.map(lambda part: _git(command, repo, input=part), parts)))
        if simplified is None:
            return found
        by_id = {commit.partition(b"\x1f")[0]: commit for commit in found}
        return [by_id[commit] for commit in simplified.result().split() if commit in by_id]


def log_commits(output: bytes) -> list[bytes]:
    """The commits of a log written as `join_log` (or git) writes it."""
    commits = (b"\0" + output).split(b"\0\0" + _COMMIT_MARK)[1:]
    if commits:
        commits[-1] = commits[-1].removesuffix(b"\0")
    return commits


def join_log(commits: Sequence[bytes]) -> bytes:
    """`log_with_blobs`'s commits as git writes them (for the build cache)."""
    return b"".join(b"\0" + _COMMIT_MARK + commit + b"\0" for commit in commits)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def read_blobs(repo: str | os.PathLike, blob_ids: Sequence[str], limit: int = 1 << 20) -> dict[str, bytes]:
    """The content of each blob (one `cat-file --batch` process); blobs over `limit` bytes or missing are left out."""
    wanted = list(dict.fromkeys(blob_ids))
    if not wanted:
        return {}
    output = _git(["cat-file", "--batch"], repo, input="".join(f"{sha}\n" for sha in wanted).encode())
    found: dict[str, bytes] = {}
    offset = 0
    for sha in wanted:
        header_end = output.index(b"\n", offset)
        header = output[offset:header_end].split()
        if len(header) < 3 or header[1] == b"missing":
            offset = header_end + 1
            continue
        size = int(header[2])
        if header[1] == b"blob" and size <= limit:
            found[sha] = output[header_end + 1 : header_end + 1 + size]
        offset = header_end + 1 + size + 1
    return found
