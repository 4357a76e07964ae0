"""`mkdocs serve`: rule edits applied by the plugin's quick update (`update_rules`), checked file
for file against a clean build of the edited rules; and the rule watcher's hand-over to the
server's build loop. Through MkDocs' Python API in this process (no server, no browser)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.config.defaults import MkDocsConfig

URL = "http://127.0.0.1:8000/"

WHOAMI = """title: Account discovery with the whoami tool
id: 5b0e3c1a-7d2f-4e6b-9a8c-1f2e3d4c5b6a
status: test
description: The whoami tool run with every option.
author: Test author
date: 2025-01-01
tags:
    - attack.discovery
    - attack.t1033
logsource:
    category: process_creation
    product: windows
detection:
    selection_img:
        Image|endswith: '\\whoami.exe'
    selection_cli:
        CommandLine|contains: '/all'
    condition: all of selection_*
level: medium
"""

WHOAMI_PARENT = """title: The whoami tool started by a web server
id: 8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f
status: experimental
author: Another author
date: 2025-02-01
tags:
    - attack.t1033
    - attack.discovery
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\\whoami.exe'
        ParentImage|endswith: '\\w3wp.exe'
    condition: selection
level: high
"""

SYSTEMINFO = """title: System information gathered with systeminfo
id: 1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d
status: test
author: Test author
date: 2025-03-01
tags:
    - attack.discovery
    - attack.t1082
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\systeminfo.exe'
    condition: selection
level: low
"""

CRONTAB = """title: Crontab edited by a user
id: 2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e
status: test
author: Another author
date: 2025-04-01
tags:
    - attack.persistence
    - attack.t1053.003
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        Image|endswith: '/crontab'
    condition: selection
level: medium
"""


class Served:
    """A project built as `mkdocs serve` builds it, and the plugin object that lives across its rebuilds."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rules = root / "rules"
        self.site = root / "served"
        MkDocsConfig.plugins.plugin_cache.clear()  # MkDocs keeps plugin objects across configs of one process
        first = self.config()
        first.plugins.on_startup(command="serve", dirty=False)
        build(first, serve_url=URL)
        self.plugin = first.plugins["sigma-catalog"]
        self.plugin.wait_for_exports()

    def config(self):
        return load_config(str(self.root / "mkdocs.yml"), site_dir=str(self.site))

    def update(self) -> bool:
        """What the rule watcher does after an edit: the quick update, else MkDocs' rebuild."""
        quick = self.plugin.update_rules()
        if not quick:
            build(self.config(), serve_url=URL)
        self.plugin.wait_for_exports()
        return quick


def differences(served: Path, clean: Path) -> list[str]:
    def listing(root: Path) -> set[str]:
        return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}

    ours, theirs = listing(served), listing(clean)
    found = [f"only served: {name}" for name in sorted(ours - theirs)] + [f"only built: {name}" for name in sorted(theirs - ours)]
    return found + [f"differs: {name}" for name in sorted(ours & theirs) if (served / name).read_bytes() != (clean / name).read_bytes()]


def clean_build(root: Path, name: str) -> Path:
    """`mkdocs build` of the project as it is now, in a process of its own (nothing remembered)."""
    site = root / name
    result = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "-f", str(root / "mkdocs.yml"), "-d", str(site)],
                            capture_output=True, text=True, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return site


@pytest.fixture(autouse=True)
def fresh_plugins():
    """MkDocs keeps plugin objects across the configs of one process: a plugin told it serves, left
    behind, would make the builds of later tests (of other files too) serve builds."""
    yield
    MkDocsConfig.plugins.plugin_cache.clear()


@pytest.fixture
def served(tmp_path) -> Served:
    root = tmp_path / "project"
    (root / "rules" / "windows").mkdir(parents=True)
    (root / "docs").mkdir()
    # (a rule of another product: pages and ATT&CK Navigator layers that whoami edits leave as they are)
    for name, text in (("whoami.yml", WHOAMI), ("whoami_parent.yml", WHOAMI_PARENT), ("windows/systeminfo.yml", SYSTEMINFO),
                       ("crontab.yml", CRONTAB)):
        (root / "rules" / name).write_text(text, encoding="utf-8")
    # site_url as mkdocs serve sets it, so that the clean build makes the same canonical links
    (root / "mkdocs.yml").write_text(
        f"site_name: Live\nsite_url: {URL}\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules: [rules]\n",
        encoding="utf-8",
    )
    return Served(root)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize("old, new", [
    ("title: Account discovery", "title: Renamed account discovery"),  # its title: lists, technique pages
    ("    - attack.t1033\nlogsource", "    - attack.t1082\nlogsource"),  # its tags: it moves to another technique page
    ("whoami.exe'\n    selection_cli", "whoami2.exe'\n    selection_cli"),  # its indicators: counts on other pages
])
def test_a_rule_edit_updates_the_served_site_as_a_clean_build_would(served, old, new):
    whoami = served.rules / "whoami.yml"
    page = served.site / "rules/5b0e3c1a-7d2f-4e6b-9a8c-1f2e3d4c5b6a/index.html"
    other = served.site / "rules/8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f/index.html"
    before, other_before = page.read_bytes(), other.read_bytes()
    edit(whoami, old, new)
    assert served.update(), "the quick update declined a plain rule edit"
    assert page.read_bytes() != before
    if "whoami2" in new:  # the shared indicator is no longer shared: the other rule's page says so
        assert other.read_bytes() != other_before
    assert differences(served.site, clean_build(served.root, "clean")) == []


def test_new_attack_data_while_serving_reaches_the_pages_of_unchanged_rules(tmp_path):
    """attack_data changed under mkdocs serve (MkDocs' rebuild): no page of the last ATT&CK data is kept."""
    import lzma

    from catalog.attack.knowledge import SNAPSHOT

    root = tmp_path / "project"
    (root / "rules").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "rules" / "whoami.yml").write_text(WHOAMI, encoding="utf-8")
    attack = root / "attack.json"
    attack.write_bytes(lzma.decompress(SNAPSHOT.read_bytes()))
    (root / "mkdocs.yml").write_text(
        f"site_name: Live\nsite_url: {URL}\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n"
        "      rules: [rules]\n      attack_data: attack.json\n", encoding="utf-8")
    served = Served(root)
    text = attack.read_text(encoding="utf-8")
    assert text.count('"System Owner/User Discovery"') == 1
    attack.write_text(text.replace('"System Owner/User Discovery"', '"Account owner discovery"'), encoding="utf-8")
    build(served.config(), serve_url=URL)  # what MkDocs does when a watched file that is no rule changes
    served.plugin.wait_for_exports()
    page = (served.site / "rules/5b0e3c1a-7d2f-4e6b-9a8c-1f2e3d4c5b6a/index.html").read_text(encoding="utf-8")
    assert "Account owner discovery" in page
    assert differences(served.site, clean_build(root, "clean")) == []


def test_adding_deleting_renaming_and_breaking_rules_while_serving(served):
    rules = served.rules
    steps = [
        lambda: (rules / "new.yml").write_text(WHOAMI_PARENT.replace("8c1d2e3f", "9d2e3f4a").replace("web server", "script host"), encoding="utf-8"),
        lambda: (rules / "whoami_parent.yml").unlink(),
        lambda: (rules / "windows/systeminfo.yml").rename(rules / "systeminfo_renamed.yml"),
        lambda: edit(rules / "whoami.yml", "detection:\n", "detection: [\n"),  # invalid YAML: the rule becomes a problem
        lambda: edit(rules / "whoami.yml", "detection: [\n", "detection:\n"),  # and valid again
    ]
    for number, step in enumerate(steps):
        step()
        served.update()
        assert differences(served.site, clean_build(served.root, f"clean{number}")) == [], f"after step {number}"
    assert not (served.site / "rules/8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f/index.html").exists()
    assert (served.site / "rules/9d2e3f4a-4a5b-4c6d-8e7f-9a0b1c2d3e4f/index.html").exists()


class FakeServer:
    """The parts of MkDocs' LiveReloadServer that the rule watcher uses."""

    def __init__(self) -> None:
        self._rebuild_cond = threading.Condition()
        self._want_rebuild = False
        self.full_builds = 0
        self.builder = self.full_build

    def full_build(self) -> None:
        self.full_builds += 1


@pytest.mark.parametrize("quick", [True, False])
def test_the_rule_watcher_hands_edits_to_the_build_loop(tmp_path, quick):
    from catalog.site.live import RuleWatcher

    server, updates = FakeServer(), []

    def update() -> bool:
        updates.append(1)
        time.sleep(2 * RuleWatcher.IDLE_MS / 1000)  # an update longer than the watcher's idle wait
        return quick

    assert RuleWatcher.possible(server)
    watcher = RuleWatcher(server, [str(tmp_path)], update)
    watcher.start()
    try:
        (tmp_path / "rule.yml").write_text(SYSTEMINFO, encoding="utf-8")
        with server._rebuild_cond:
            assert server._rebuild_cond.wait_for(lambda: server._want_rebuild, timeout=60), "no event reached the server"
        server.builder()  # what the server's build loop runs
        if quick:  # the collector stays paused until the watcher has been idle for a while after the update
            time.sleep(RuleWatcher.IDLE_MS / 3000)  # (the browser asks for the page now)
            assert not gc.isenabled()
            deadline = time.monotonic() + 30
            while not gc.isenabled() and time.monotonic() < deadline:
                time.sleep(0.05)
        assert gc.isenabled()
    finally:
        watcher.stop()
        gc.enable()
    assert updates == [1]
    assert server.full_builds == (0 if quick else 1)
    server.builder()  # a rebuild that no rule edit asked for (docs/, mkdocs.yml): MkDocs' own
    assert updates == [1] and server.full_builds == (1 if quick else 2)


def test_the_last_updates_exports_are_the_ones_left(tmp_path):
    """Each update's catalog.json, CSV and search index come from a forked process; the older ones
    are stopped or finish first, whatever their speed."""

    from catalog.site.exports import ExportFile
    from catalog.site.live import ForkedExports

    def make(number: int):
        def exports() -> list[ExportFile]:
            time.sleep(0.2 * (5 - number))  # the older the update, the slower its exports
            return [ExportFile("exports/catalog.json", b"update %d" % number)]
        return exports

    exports = ForkedExports()
    for number in range(5):
        exports.pending = make(number)
        exports.start(tmp_path)
    exports.wait()
    assert (tmp_path / "exports/catalog.json").read_bytes() == b"update 4"
    assert not [path.name for path in (tmp_path / "exports").iterdir() if path.name != "catalog.json"]  # no temporary files left


def test_the_history_notice_is_not_repeated_on_every_update(served, caplog):
    """The rule folder is not in a git repository: the first build said so; updates do not say it again."""
    import logging

    caplog.set_level(logging.DEBUG, logger="mkdocs.plugins.sigma_catalog")
    for number in range(2):
        edit(served.rules / "whoami.yml", "level: medium" if number == 0 else "level: high", "level: high" if number == 0 else "level: medium")
        assert served.update()
    notices = [record for record in caplog.records if "no rule history" in record.getMessage()]
    assert len(notices) == 2 and all(record.levelno == logging.DEBUG for record in notices)
