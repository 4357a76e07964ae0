"""The git history of every rule file, from ONE pass over the whole repository's history.

`load_history(roots, cache_dir)` answers, for each file under the rule folders: the commits that
touched it, newest first, followed through renames back to the commit that created it. It reads
the history of the rule folders once (`git.log_with_blobs`: `git rev-list` and `git diff-tree
--stdin -M --raw`, never a process per file) and keeps git's raw output in the build cache with
its HEAD: a build of an unchanged repository parses the cached log instead, and after new commits
only those are read (`<cached HEAD>..HEAD`) and put before the cached log.

It never fails a build: without git, in a folder outside a repository, or in a repository without
commits, it returns None and says why once (`HistoryUnavailable.reason`); a shallow clone gives
the history it has, marked `shallow` ("history truncated" on the pages)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from catalog.git import GitError, head_commit, is_ancestor, join_log, log_commits, log_with_blobs, repository_root, shallow_edge

#: Bump when the cached form changes.
_CACHE_VERSION = 2
_NO_BLOB = "0" * 40


@dataclass(frozen=True, slots=True)
class Commit:
    id: str
    time: int  # author time, seconds since the epoch
    subject: str

    @property
    def short(self) -> str:
        return self.id[:10]

    @property
    def date(self) -> str:
        """The author date (UTC) as YYYY-MM-DD, comparable with a rule's `date`/`modified`."""
        return datetime.fromtimestamp(self.time, timezone.utc).strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class FileChange:
    """One commit's change to one file: A (created), M (modified), R (renamed, maybe modified),
    S (the file as a shallow clone's history begins)."""

    commit: Commit
    status: str
    path: str  # the file's path after the commit, inside the repository
    old_path: str | None = None  # before a rename
    old_blob: str | None = None  # the file's content before (None when created)
    new_blob: str | None = None

    @property
    def content_changed(self) -> bool:
        return self.old_blob != self.new_blob


@dataclass(slots=True)
class FileHistory:
    path: str  # at HEAD, inside the repository
    changes: list[FileChange] = field(default_factory=list)  # newest first

    @property
    def created(self) -> FileChange | None:
        """The commit that added the file (under whatever name it had then); None past a shallow clone's edge."""
        return self.changes[-1] if self.changes and self.changes[-1].status == "A" else None

    @property
    def last_changed(self) -> FileChange | None:
        return next((change for change in self.changes if change.content_changed), None)


@dataclass(slots=True)
class RepositoryHistory:
    root: str  # the repository's top folder
    head: str
    shallow: bool
    files: dict[str, FileHistory]  # by path at HEAD, inside the repository
    commits: list[Commit]  # every commit that touched the rule folders, newest first

    def of(self, path: str | os.PathLike) -> FileHistory | None:
        """The history of a file given by its path on disk."""
        try:
            relative = Path(os.path.realpath(path)).relative_to(Path(os.path.realpath(self.root))).as_posix()
        except ValueError:
            return None
        return self.files.get(relative)


@dataclass(frozen=True, slots=True)
class HistoryUnavailable:
    reason: str  # one line for the build log


def load_history(roots: Sequence[str | os.PathLike], cache_dir: str | os.PathLike | None = None) -> RepositoryHistory | HistoryUnavailable:
    """The history of the files under `roots`. The build cache keeps git's raw log with its HEAD:
    when HEAD has not moved it is parsed again (no git pass); when HEAD moved on from the cached
    one, only the new commits are read and put before it (the log runs newest first)."""
    if not roots:
        return HistoryUnavailable("no rule folders")
    try:
        repo = repository_root(roots[0])
        head = head_commit(repo)
        inside = [_inside(repo, root) for root in roots]
        if any(relative is None for relative in inside):
            return HistoryUnavailable(f"a rule folder is outside the git repository {repo}")
        edge = shallow_edge(repo)
        scope = hashlib.sha256(json.dumps([_CACHE_VERSION, sorted(edge), inside]).encode()).hexdigest()[:24]
        cache_file = Path(cache_dir) / "history" / "log.bin" if cache_dir is not None else None
        cached_head, log = _read_cache(cache_file, scope) or (None, [])
        if cached_head != head:
            since = cached_head if cached_head is not None and not edge and is_ancestor(repo, cached_head, head) else None
            log = log_with_blobs(repo, [p for p in inside if p is not None], since) + (log if since else [])
            _write_cache(cache_file, scope, head, log)
    except GitError as error:
        return HistoryUnavailable(str(error))
    files, commits = parse_log(log, edge)
    return RepositoryHistory(str(repo), head, bool(edge), files, commits)


def history_or_none(roots: Sequence[str | os.PathLike], cache_dir: str | os.PathLike | None = None) -> RepositoryHistory | None:
    """The history where git has one (for `catalog check` and `analyze`: no history, no date findings)."""
    found = load_history(roots, cache_dir) if roots else HistoryUnavailable("no rule folders")
    return found if isinstance(found, RepositoryHistory) else None


def _inside(repo: Path, root: str | os.PathLike) -> str | None:
    real = Path(os.path.realpath(root))
    real_repo = repo.resolve()
    return real.relative_to(real_repo).as_posix() if real.is_relative_to(real_repo) else None


def parse_log(log: Sequence[bytes], edge: set[str] = frozenset()) -> tuple[dict[str, FileHistory], list[Commit]]:
    """Each file's changes from `git.log_with_blobs`'s commits, following renames. A shallow
    clone's `edge` commits show every file as added: there the status is "S" (not a creation).

    The log runs newest first; `alias` maps a path name, as it was in the commits still to read,
    to the HEAD path of the file that had that name then (None once that name held no file of
    HEAD: before its creation, after its deletion)."""
    files: dict[str, FileHistory] = {}
    commits: list[Commit] = []
    alias: dict[str, str | None] = {}
    for item in log:
        header, _, raw = item.decode("utf-8", "surrogateescape").partition("\0")
        commit_id, _, rest = header.partition("\x1f")
        time_text, _, subject = rest.partition("\x1f")
        records = _records(raw.lstrip("\n"))
        if not records:
            continue
        commit = Commit(commit_id, int(time_text) if time_text.isdigit() else 0, subject)
        commits.append(commit)
        # look every record up before applying any (renames may swap names within one commit)
        targets = [alias.get(new_path, None if new_path in alias else new_path) for _, _, _, _, new_path in records]
        for (status, old_blob, new_blob, old_path, new_path), target in zip(records, targets):
            if status == "D":
                alias.setdefault(new_path, None)
                continue
            if target is not None:
                kind = status[0] if status[0] in "AMR" else "A" if status[0] == "C" else "M"
                kind = "S" if kind == "A" and commit_id in edge else kind
                files.setdefault(target, FileHistory(target)).changes.append(FileChange(
                    commit, kind, new_path, old_path if kind == "R" else None,
                    None if kind == "A" else old_blob, new_blob))
            if status[0] in "AC":
                alias[new_path] = None
            elif status[0] == "R":
                alias[new_path] = None
                alias[old_path] = target
            else:
                alias[new_path] = target
    return files, commits


def _records(raw: str) -> list[tuple[str, str | None, str | None, str, str]]:
    """(status, old blob, new blob, old path, new path) of one commit's raw, NUL-separated records."""
    tokens = raw.split("\0")
    records = []
    index = 0
    while index < len(tokens):
        meta = tokens[index].lstrip("\n")
        if not meta.startswith(":"):
            index += 1
            continue
        parts = meta[1:].split()
        if len(parts) < 5 or index + 1 >= len(tokens):
            break
        old_blob, new_blob, status = parts[2], parts[3], parts[4]
        if status[0] in "RC":
            old_path, new_path = tokens[index + 1], tokens[index + 2] if index + 2 < len(tokens) else ""
            index += 3
        else:
            old_path = new_path = tokens[index + 1]
            index += 2
        records.append((status, None if old_blob == _NO_BLOB else old_blob, None if new_blob == _NO_BLOB else new_blob, old_path, new_path))
    return records


def _read_cache(cache_file: Path | None, scope: str) -> tuple[str, list[bytes]] | None:
    """(the cached HEAD, the log's commits up to it) when the cache holds the log of the same rule folders."""
    if cache_file is None or not cache_file.is_file():
        return None
    try:
        header, _, log = cache_file.read_bytes().partition(b"\n")
        data = json.loads(header)
        if data.get("scope") != scope or data.get("size") != len(log) or not isinstance(data.get("head"), str):
            return None
    except (OSError, ValueError, AttributeError):
        return None  # a damaged cache is rebuilt
    return data["head"], log_commits(log)


def _write_cache(cache_file: Path | None, scope: str, head: str, log: list[bytes]) -> None:
    """One JSON line (scope, HEAD, the log's size), then the log as git writes it."""
    if cache_file is None:
        return
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_suffix(".tmp")
        text = join_log(log)
        temporary.write_bytes(json.dumps({"scope": scope, "head": head, "size": len(text)}).encode() + b"\n" + text)
        os.replace(temporary, cache_file)
    except OSError:
        pass  # the cache only saves time


def commit_url(source_url: str | None, commit_id: str) -> str | None:
    """The commit's page on the host named by a rule folder's source URL (GitHub, GitLab, Gitea
    and Bitbucket style: https://host/owner/repo/blob/... or .../-/blob/...); None for another URL."""
    if not source_url or not source_url.lower().startswith(("https://", "http://")):
        return None
    for marker, commit_part in (("/-/blob/", "/-/commit/"), ("/-/tree/", "/-/commit/"), ("/blob/", "/commit/"),
                                ("/tree/", "/commit/"), ("/src/", "/commits/")):
        if marker in source_url:
            return source_url.split(marker, 1)[0] + commit_part + commit_id
    return None
