"""The `catalog` command: analyse, check and build rule catalogs, and manage ATT&CK data."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from catalog.attack import AttackDataError, load_knowledge
from catalog.attack import commands as attack_commands
from catalog.jsonexport import catalog_to_json
from catalog.pipeline import build_catalog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="catalog", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    analyze = commands.add_parser("analyze", help="analyse rule folders and report the results")
    analyze.add_argument("paths", nargs="+", help="rule folders or files")
    analyze.add_argument("--json", metavar="FILE", help="write every rule's analysis and every problem as JSON ('-' for stdout)")
    analyze.add_argument("--quiet", action="store_true", help="print only the summary, not each problem")
    analyze.add_argument("--attack-data", metavar="PATH", help="ATT&CK STIX bundle or cti folder (default: the shipped snapshot)")
    analyze.add_argument("--no-attack", action="store_true", help="skip the ATT&CK mapping")
    analyze.set_defaults(handler=_analyze)

    attack_commands.register(commands)

    arguments = parser.parse_args(argv)
    return arguments.handler(arguments)


def _analyze(arguments: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        knowledge = None if arguments.no_attack else load_knowledge(arguments.attack_data)
    except AttackDataError as error:
        print(f"catalog analyze: error: {error}", file=sys.stderr)
        return 2
    catalog = build_catalog(arguments.paths, knowledge)
    elapsed = time.perf_counter() - started
    report = sys.stderr if arguments.json == "-" else sys.stdout
    if not arguments.quiet:
        for problem in catalog.problems:
            print(problem, file=report)
    data = catalog_to_json(catalog)
    summary = data["summary"]
    print(
        f"{summary['files']} files, {summary['rules']} rules, {summary['correlations']} correlations, "
        f"{summary['filters']} filters; {summary['errors']} errors, {summary['warnings']} warnings; {elapsed:.2f} s",
        file=report,
    )
    if arguments.json == "-":
        json.dump(data, sys.stdout, indent=1, ensure_ascii=False)
    elif arguments.json:
        Path(arguments.json).write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
