"""`catalog attack update` and `catalog attack snapshot`: refresh the shipped ATT&CK snapshot.

`register(subparsers)` adds the `attack` command to the catalog's argparse CLI. Like the other
commands of `catalog.cli`, each subcommand sets `handler(namespace) -> exit code`: 0, or 2 with a
one-line error on stderr (no traceback) when the data cannot be fetched or read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from catalog.attack.knowledge import SNAPSHOT, AttackDataError
from catalog.attack.snapshot import SnapshotInfo, make_snapshot, update_snapshot


def register(subparsers: argparse._SubParsersAction) -> None:
    attack = subparsers.add_parser("attack", help="manage the MITRE ATT&CK data the catalog ships")
    commands = attack.add_subparsers(dest="attack_command", metavar="{update,snapshot}")
    commands.required = True

    update = commands.add_parser("update", help="download an ATT&CK release (attack-stix-data) and rewrite the snapshot")
    update.add_argument("--release", help="ATT&CK release, e.g. 19.1 (default: the latest)")
    update.add_argument("--output", type=Path, default=SNAPSHOT, help="snapshot to write (default: the shipped one)")
    update.set_defaults(handler=run_update)

    snapshot = commands.add_parser("snapshot", help="make the snapshot from a local bundle or cti directory")
    snapshot.add_argument("bundle", type=Path, help="enterprise-attack .json/.json.xz/.json.gz or a cti directory")
    snapshot.add_argument("--output", type=Path, default=SNAPSHOT, help="snapshot to write (default: the shipped one)")
    snapshot.add_argument("--release", help="release to record when the data does not say (e.g. 19.1)")
    snapshot.set_defaults(handler=run_snapshot)


def run_update(args: argparse.Namespace) -> int:
    return _report("update", lambda: update_snapshot(args.release, args.output))


def run_snapshot(args: argparse.Namespace) -> int:
    return _report("snapshot", lambda: make_snapshot(args.bundle, args.output, release=args.release))


def _report(name: str, action: Callable[[], SnapshotInfo]) -> int:
    try:
        info = action()
    except AttackDataError as exc:
        print(f"catalog attack {name}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the output directory is not writable
        print(f"catalog attack {name}: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {info.path} (ATT&CK Enterprise v{info.release}, {info.objects} objects, {info.size:,} bytes)")
    return 0

