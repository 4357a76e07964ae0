"""Our pages as files: one page's HTML (rendered, with its table of contents, in the theme's frame;
a failure costs that page only) written into the site, and all the pages of a `mkdocs build`
rendered by several processes at once.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Callable, Iterable

from catalog.problems import Code, internal_error, printable
from catalog.site.addresses import is_rule_path
from catalog.site.exports import FILE_MODE
from catalog.site.model import Page
from catalog.site.render import Frame, Renderer, toc_html

log = logging.getLogger("mkdocs.plugins.sigma_catalog")

#: Fewer pages than this are rendered by the building process alone (forking costs more).
_PARALLEL_MINIMUM = 400


def page_html(page: Page, renderer: Renderer, frame: Frame, failures: list[str]) -> bytes:
    """A page's HTML; a failure rendering it costs that page only: a short error page instead,
    and what failed added to `failures` (the build logs them as errors)."""
    try:
        content = renderer.render(page.template, page.path, page.data())
    except Exception as error:  # noqa: BLE001 - a bug or a limit must not take the site down
        message = internal_error(page.path, error, "rendering this page").message
        failures.append(f"{page.path} ({printable(page.title[:200])}): {message}")
        content = renderer.render("page_error.html", page.path, {"title": page.title, "location": page.path, "message": message})
    toc = toc_html(content) if is_rule_path(page.path) else ""  # rule pages show their table of contents
    return frame.wrap(page.path, page.title, page.description, content, toc).encode("utf-8", errors="xmlcharrefreplace")


def report_failures(failures: Iterable[str]) -> None:
    for failure in failures:
        log.error("sigma-catalog: %s [%s]", failure, Code.INTERNAL_ERROR)


class _Ranges:
    """The pages of a build in ranges, which the processes of `render_all` take in turn: a counter
    and a lock they share, and a flag for each range finished."""

    def __init__(self, forking, pages: int, processes: int) -> None:  # noqa: ANN001 - a multiprocessing context
        size = max(50, pages // (processes * 8))
        self.bounds = [(start, min(start + size, pages)) for start in range(0, pages, size)]
        self._next = forking.RawValue("i", 0)
        self._lock = forking.Lock()
        self.done = forking.RawArray("b", len(self.bounds))

    def take(self) -> int | None:
        with self._lock:
            index = self._next.value
            self._next.value = index + 1
        return index if index < len(self.bounds) else None


#: What the rendering processes of `render_all` work on (inherited through fork, never pickled).
_JOB: tuple | None = None


def _render_range(bounds: tuple[int, int]) -> list[str]:
    """Render and write the pages of `bounds`; what failed (the building process logs it)."""
    pages, renderer, frame, site_dir = _JOB  # type: ignore[misc]
    made: set[str] = set()
    failures: list[str] = []
    site = str(site_dir)
    for page in pages[bounds[0]:bounds[1]]:
        write_index(site, page.path, page_html(page, renderer, frame, failures), made)
    return failures


def _render_ranges(ranges: _Ranges, report: Callable[[list[str]], None]) -> None:
    """Render ranges until none is left; `report` gets what failed in each (before it counts as done)."""
    while (index := ranges.take()) is not None:
        failures = _render_range(ranges.bounds[index])
        if failures:
            report(failures)
        ranges.done[index] = 1


def _worker(ranges: _Ranges, results) -> None:  # noqa: ANN001 - a multiprocessing connection
    _render_ranges(ranges, results.send)  # (a range's failures reach the building process even if this one dies later)
    results.close()


def render_all(pages: list[Page], renderer: Renderer, frame: Frame, site_dir: Path, meanwhile: Callable[[], None] = lambda: None) -> int:
    """`mkdocs build`: render every page into the site, returning how many. On Linux with several
    CPUs, forked worker processes and this one (once it has run `meanwhile`) take ranges of the
    pages in turn: rendering is pure Python, one process uses one CPU. Ranges a worker left
    unfinished (it died) are rendered here afterwards. The workers inherit the paused garbage
    collector of the build."""
    global _JOB
    for template in {page.template for page in pages}:
        renderer.env.get_template(template)  # compiled once here, not once per worker
    _JOB = (pages, renderer, frame, site_dir)
    try:
        workers = min(os.cpu_count() or 1, 8) - 1
        if workers < 1 or len(pages) < _PARALLEL_MINIMUM or not sys.platform.startswith("linux"):
            meanwhile()
            report_failures(_render_range((0, len(pages))))
            return len(pages)
        import multiprocessing

        forking = multiprocessing.get_context("fork")
        ranges = _Ranges(forking, len(pages), workers + 1)
        started = []
        try:
            for _ in range(workers):
                receive, send = forking.Pipe(duplex=False)
                process = forking.Process(target=_worker, args=(ranges, send), name="sigma-catalog pages", daemon=True)
                process.start()
                send.close()
                started.append((process, receive))
        except OSError as error:  # no (more) fork here: this process renders what is left
            log.debug("sigma-catalog: rendering with %d worker processes (%s)", len(started), error)
        failures: list[str] = []
        try:
            meanwhile()
            _render_ranges(ranges, failures.extend)
            for process, receive in started:
                while True:
                    try:
                        failures.extend(receive.recv())
                    except EOFError:
                        break
                process.join()
                if process.exitcode:  # it died: what it did not finish is rendered below
                    log.warning("sigma-catalog: a page rendering process ended early (exit code %s)", process.exitcode)
        finally:
            for process, _ in started:
                process.join()
        for index, finished in enumerate(ranges.done):
            if not finished:
                failures.extend(_render_range(ranges.bounds[index]))
        report_failures(sorted(failures))
        return len(pages)
    finally:
        _JOB = None


def write_index(site_dir: str, path: str, data: bytes, made: set[str]) -> None:
    """`data` as the index.html of the page at `path` ("rules/x/", checked safe) of the site, with
    plain os calls: pathlib's cost half the time of writing the thousands of pages of a build.
    `made`: folders known to exist."""
    folder = os.path.join(site_dir, path)
    if folder not in made:
        try:
            os.mkdir(folder)
        except FileExistsError:
            pass
        except FileNotFoundError:  # the first page of a family: its parent folder too
            os.makedirs(folder, exist_ok=True)
        made.add(folder)
    descriptor = os.open(os.path.join(folder, "index.html"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
    finally:
        os.close(descriptor)
