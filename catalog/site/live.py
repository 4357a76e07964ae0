"""`mkdocs serve`: a rule edit reaches the served site without MkDocs' rebuild.

A full build leaves a `Snapshot`: the MkDocs files it started from, its own generated files, and
for each browse page the theme's HTML around the page's content. A rule edit then runs the same
steps as the full build (`BuildFiles.add`: the catalog, the site model, the exports, the browse
pages; `PageWriter`: the pages whose data changed) and puts the browse pages whose content changed
back into their captured frames: one way to make every page, without MkDocs' own rebuild of
everything it knows. When the edit changes what MkDocs built itself (the navigation: a browse
page comes or goes; the searchable home page of docs/), the update declines and MkDocs rebuilds.

`RuleWatcher` watches the rule folders through file system events (watchfiles) and hands rule
edits to the server's build loop, so they run one at a time with MkDocs' own rebuilds (edits to
docs/ or mkdocs.yml still go through MkDocs' watcher and its full rebuild), and the server tells
browsers to reload when the update is done.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mkdocs.structure.files import File

from catalog import pipeline
from catalog.site.output import DeferredExports, write_export, write_if_changed

log = logging.getLogger("mkdocs.plugins.sigma_catalog")


@dataclass
class BrowseFrame:
    """The theme's output of one browse page, cut around the content the plugin gave it."""

    dest_uri: str
    before: str
    after: str

    @classmethod
    def capture(cls, dest_uri: str, output: str, content: str) -> "BrowseFrame | None":
        if not content or output.count(content) != 1:
            return None  # another plugin changed the content: only MkDocs can build this page
        before, after = output.split(content)
        return cls(dest_uri, before, after)

    def html(self, content: str) -> bytes:
        return (self.before + content + self.after).encode("utf-8", errors="xmlcharrefreplace")


@dataclass
class Snapshot:
    """What the last full build leaves for rule edits: enough to redo its work on our files."""

    given: list[File]  # MkDocs' files before the plugin added its own (docs/, earlier plugins)
    ours: list[File] = field(default_factory=list)  # the files the plugin added
    frames: dict[str, BrowseFrame] = field(default_factory=dict)  # src_uri -> its frame
    sitemap: str | None = None  # MkDocs' sitemap.xml, before the plugin lists its pages in it

    def shape(self) -> list[str]:
        return [file.src_uri for file in self.ours]


@dataclass
class BrowseState:
    """The browse pages of one build as MkDocs sees them: their titles, content and the home figures."""

    titles: dict[str, str]
    html: dict[str, str]
    home_html: str | None


def write_browse_pages(before: BrowseState, after: BrowseState, snapshot: Snapshot, site_dir: Path) -> bool:
    """Rewrite the browse pages whose content changed, in their frames; False when MkDocs must
    build them (the navigation changed, a page has no frame, the searchable home page changed)."""
    if before.titles != after.titles or before.html.keys() != after.html.keys():
        return False
    if before.home_html != after.home_html:
        return False  # the user's home page: its text is in MkDocs' search index
    changed = [src_uri for src_uri, html in after.html.items() if before.html[src_uri] != html]
    if any(src_uri not in snapshot.frames for src_uri in changed):
        return False
    for src_uri in changed:
        frame = snapshot.frames[src_uri]
        write_if_changed(site_dir / frame.dest_uri, frame.html(after.html[src_uri]))
    return True


def copy_generated_files(files: list[File], site_dir: Path) -> None:
    """The plugin's files that MkDocs copies (exports, assets), where their content changed."""
    for file in files:
        if not file.is_documentation_page() and file.abs_src_path:
            write_if_changed(site_dir / file.dest_uri, Path(file.abs_src_path).read_bytes())


class ForkedExports(DeferredExports):
    """`mkdocs serve` on Linux: catalog.json, the CSV and the search index of each build or update
    written by a forked process. A thread of this process held the next update back (it shares the
    interpreter lock, and the update had to wait for it); a process runs on another CPU. A newer
    update stops the children of older ones unless they are writing already (their files would be
    out of date at once), and each child writes only after the one before it has exited, so the last
    update's files are the ones left."""

    def __init__(self) -> None:
        super().__init__()
        self._children: list[int] = []
        self._last_exited: int | None = None  # a pipe's read end: end of file once the last child has exited

    def start(self, site_dir: Path) -> None:
        if self.pending is None or not sys.platform.startswith("linux"):
            super().start(site_dir)
            return
        make, self.pending = self.pending, None
        self._reap()
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # ends it unless it is writing (then it finishes first)
        previous = self._last_exited
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: holds `writer` open until it exits
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.nice(10)  # background work: the next rule edit's update goes first
                os.close(reader)
                with pipeline.collector_paused():
                    exports = make()
                while previous is not None and os.read(previous, 1):
                    pass
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
                for export in exports:
                    write_export(site_dir, export)
                code = 0
            except BaseException as error:  # noqa: BLE001 - a child process: report, then exit
                log.error("sigma-catalog: writing catalog.json, the CSV and the search index failed: %s", error)
            finally:
                os._exit(code)
        os.close(writer)
        if previous is not None:
            os.close(previous)
        self._last_exited = reader
        self._children.append(pid)

    def wait_for_thread(self) -> None:
        """Until no thread of this process writes exports (it would share the page memos); forked
        children, with their own copy of everything, go on."""
        super().wait()

    def _reap(self) -> None:
        self._children = [pid for pid in self._children if os.waitpid(pid, os.WNOHANG) == (0, 0)]

    def wait(self) -> None:
        super().wait()
        for pid in self._children:
            os.waitpid(pid, 0)
        self._children = []
        if self._last_exited is not None:
            os.close(self._last_exited)
            self._last_exited = None


class RuleWatcher:
    """Watches the rule folders with file system events; a change runs `update` in the server's
    build loop instead of MkDocs' full rebuild (which runs when `update` declines or fails)."""

    #: milliseconds without a new event before a batch of changes is handed on (an editor's save
    #: is a few events in a row)
    STEP_MS = 20
    #: milliseconds the watcher waits for events before it looks whether there is garbage to collect
    IDLE_MS = 300

    def __init__(self, server, paths: list[str], update: Callable[[], bool]) -> None:
        self._server = server
        self._paths = paths
        self._update = update
        self._full_build = server.builder
        self._pending = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._building = threading.Lock()  # held while a build or an update runs
        self._collect = False  # an update left the garbage collector paused
        self._finished = 0.0  # time.monotonic() when the last build or update ended

    @staticmethod
    def possible(server) -> bool:
        """watchfiles is installed and the server is MkDocs' LiveReloadServer as we know it."""
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            return False
        return all(hasattr(server, name) for name in ("builder", "_rebuild_cond", "_want_rebuild"))

    def start(self) -> None:
        self._server.builder = self._build
        # MkDocs waits this long after the last change before it builds; our events come grouped already
        self._server.build_delay = self.STEP_MS / 1000
        self._thread = threading.Thread(target=self._watch, name="sigma-catalog rule watcher", daemon=True)
        self._thread.start()
        log.info("sigma-catalog: watching the rule folders for edits: %s", ", ".join(self._paths))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _watch(self) -> None:
        import watchfiles

        for changes in watchfiles.watch(*self._paths, stop_event=self._stop, step=self.STEP_MS, rust_timeout=self.IDLE_MS,
                                        yield_on_timeout=True, raise_interrupt=False):
            if not changes:
                self._collect_garbage()
                continue
            log.debug("sigma-catalog: changed: %s", sorted(path for _, path in changes))
            with self._server._rebuild_cond:
                self._pending = True
                self._server._want_rebuild = True
                self._server._rebuild_cond.notify_all()

    def _collect_garbage(self) -> None:
        """The collector back on once no update has run for IDLE_MS: its first collection (up to
        a second on SigmaHQ after a few updates) runs while the author reads the page, not while
        the browser asks the server for it right after the update."""
        with self._building:
            idle = time.monotonic() - self._finished >= self.IDLE_MS / 1000
            if self._collect and not self._pending and idle:
                self._collect = False
                gc.enable()

    def _build(self, *args, **kwargs) -> None:
        with self._server._rebuild_cond:
            pending, self._pending = self._pending, False
        with self._building:
            try:
                self._build_now(pending, *args, **kwargs)
            finally:
                self._finished = time.monotonic()

    def _build_now(self, pending: bool, *args, **kwargs) -> None:
        """The quick update after rule edits (`pending`), else MkDocs' own build."""
        if pending and not args and not kwargs:
            gc.disable()  # update_rules leaves it so: _collect_garbage turns it on
            self._collect = True
            try:
                if self._update():
                    return
            except Exception:  # the full rebuild below reports what is wrong in the rules
                log.exception("sigma-catalog: the quick update failed; MkDocs rebuilds the site")
        if self._collect:
            self._collect = False
            gc.enable()  # a full build pauses the collector itself
        self._full_build(*args, **kwargs)
