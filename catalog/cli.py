"""The `catalog` command: analyse, check and build rule catalogs, and manage ATT&CK data."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from catalog.attack import AttackDataError, load_knowledge
from catalog import changelog as changelog_command
from catalog import check as check_command
from catalog.attack import commands as attack_commands
from catalog.findings import add_catalog_findings
from catalog.history import history_or_none
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
    check_command.register(commands)  # `catalog check` (catalog/check.py)
    changelog_command.register(commands)  # `catalog changelog A..B` (catalog/changelog.py)
    _register_build(commands)
    _register_changes(commands)

    arguments = parser.parse_args(argv)
    try:
        return arguments.handler(arguments)
    except BrokenPipeError:
        # the reader stopped early (`catalog check ... | head -1`): exit quietly; stdout goes to
        # devnull so the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _analyze(arguments: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        knowledge = None if arguments.no_attack else load_knowledge(arguments.attack_data)
    except AttackDataError as error:
        print(f"catalog analyze: error: {error}", file=sys.stderr)
        return 2
    catalog = build_catalog(arguments.paths, knowledge)
    add_catalog_findings(catalog, history_or_none(arguments.paths))
    elapsed = time.perf_counter() - started
    report = sys.stderr if arguments.json == "-" else sys.stdout
    if not arguments.quiet:
        for problem in catalog.problems:
            print(problem, file=report)
    data = catalog_to_json(catalog)
    summary = data["summary"]
    print(
        f"{summary['files']} files, {summary['rules']} rules, {summary['correlations']} correlations, "
        f"{summary['filters']} filters; {summary['errors']} errors, {summary['warnings']} warnings, {summary['notices']} notices; {elapsed:.2f} s",
        file=report,
    )
    if arguments.json == "-":
        json.dump(data, sys.stdout, indent=1, ensure_ascii=False)
    elif arguments.json:
        Path(arguments.json).write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


# --- `catalog build`: the MkDocs build (or live server) through MkDocs' Python API -----------


def _register_build(commands) -> None:
    build = commands.add_parser("build", help="build the catalog site with MkDocs (optionally with the changes against a base revision)")
    build.add_argument("--config", default="mkdocs.yml", help="the MkDocs configuration (default: mkdocs.yml)")
    build.add_argument("--site-dir", help="where to write the site (default: the configuration's site_dir)")
    build.add_argument("--base", metavar="REF", help="git revision to compare with: adds the Changes page and change banners")
    build.add_argument("--strict", action="store_true", help="fail on any rule error (all listed at once) and on MkDocs warnings")
    build.add_argument("--serve", action="store_true", help="serve the site with live reload instead of writing it")
    build.set_defaults(handler=_build)


def _build(arguments: argparse.Namespace) -> int:
    import os

    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.commands.serve import serve as mkdocs_serve
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    from catalog.git import source_date_epoch
    from catalog.site.config import ConfigError, with_plugin_options

    _show_mkdocs_log()
    # Material 9.x prints a banner about MkDocs 2 on every build; the project pins mkdocs<2 (README)
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    if "SOURCE_DATE_EPOCH" not in os.environ:  # reproducible dates: the last commit's time (docs/review.md)
        epoch = source_date_epoch(Path(arguments.config).resolve().parent)
        if epoch is not None:
            os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
    # MkDocs' own overrides of mkdocs.yml (as `mkdocs build -d DIR --strict` passes them); --base and
    # --strict also set the plugin's options, through an override of the `plugins` list
    overrides: dict = {"strict": True} if arguments.strict else {}
    try:
        if arguments.base or arguments.strict:
            overrides["plugins"] = with_plugin_options(arguments.config, base=arguments.base, strict=arguments.strict)
        if arguments.serve:  # serve loads the configuration again on every rebuild, with these overrides
            mkdocs_serve(config_file=arguments.config, **overrides)
            return 0
        if arguments.site_dir:
            overrides["site_dir"] = arguments.site_dir
        config = load_config(config_file=arguments.config, **overrides)
        config.plugins.on_startup(command="build", dirty=False)
        try:
            _build_then_replace(config, mkdocs_build)
        finally:
            config.plugins.on_shutdown()
    except (MkDocsException, ConfigError) as error:
        print(f"catalog build: error: {error}", file=sys.stderr)
        return 1
    return 0


def _build_then_replace(config, mkdocs_build) -> None:
    """Build into a fresh folder beside the site folder; replace the site only when the build
    succeeded (a failed build leaves the previous site as it was)."""
    import shutil
    import tempfile

    final = Path(config.site_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=final.parent))
    config["site_dir"] = str(fresh)
    try:
        mkdocs_build(config)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    finally:
        config["site_dir"] = str(final)
    fresh.chmod(0o755)  # mkdtemp makes it private; a site folder is served to everyone
    old = final.parent / f"{fresh.name}.old"
    if final.exists():
        os.rename(final, old)
    os.rename(fresh, final)
    shutil.rmtree(old, ignore_errors=True)


def _show_mkdocs_log() -> None:
    """MkDocs' messages (and the plugin's) on stderr, as `mkdocs build` shows them."""
    import logging

    class CurrentStderr(logging.StreamHandler):
        """Writes to sys.stderr as it is at each message: whoever called main may have replaced it since."""

        stream = property(lambda self: sys.stderr, lambda self, value: None)

    logger = logging.getLogger("mkdocs")
    if not any(getattr(handler, "_catalog_cli", False) for handler in logger.handlers):
        handler = CurrentStderr()
        handler.setFormatter(logging.Formatter("%(levelname)-7s -  %(message)s"))
        handler._catalog_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


# --- `catalog changes`: the change summary for a pull request (catalog/change_summary.py) -----


def _register_changes(commands) -> None:
    from catalog.change_summary import DEFAULT_LIMIT, MIN_LIMIT

    def limit(text: str) -> int:
        value = int(text)
        if value < MIN_LIMIT:
            raise argparse.ArgumentTypeError(f"at least {MIN_LIMIT}")
        return value

    changes = commands.add_parser("changes", help="what a change does to the rules, as Markdown for a pull request (or JSON)")
    changes.add_argument("paths", nargs="*", help="rule folders (default: the plugin's folders in ./mkdocs.yml, else 'rules')")
    changes.add_argument("--base", metavar="REF", required=True, help="git revision to compare with (its merge base with HEAD)")
    changes.add_argument("--format", choices=("markdown", "json"), default="markdown", help="markdown (default) or json")
    changes.add_argument("--limit", type=limit, default=DEFAULT_LIMIT, metavar="CHARS",
                         help=f"most UTF-8 bytes of Markdown; past it whole rules are left out (default {DEFAULT_LIMIT}: "
                              "GitHub's job summary; 65000 suits a comment)")
    changes.add_argument("--preview-url", metavar="URL", help="where the preview site is published: rules link to their pages")
    changes.add_argument("--artifact-url", metavar="URL", help="where the preview site can be downloaded (the CI run's page): "
                                                               "the line about rules left out links to it")
    changes.add_argument("--config", default="mkdocs.yml", help="mkdocs.yml to take the default rule folders from")
    changes.add_argument("--attack-data", metavar="PATH", help="ATT&CK STIX bundle or cti folder (default: the shipped snapshot)")
    changes.set_defaults(handler=_changes)


def _changes(arguments: argparse.Namespace) -> int:
    from catalog.change_summary import Preview, SummaryError, summary_json, summary_markdown
    from catalog.changes import ChangeError
    from catalog.diff import compute_changes

    try:
        preview = Preview.at(arguments.preview_url, arguments.artifact_url)
        paths = arguments.paths or check_command.default_paths(arguments.config)
        changes = compute_changes(paths, arguments.base, load_knowledge(arguments.attack_data))
    except (SummaryError, check_command.CheckError, AttackDataError, ChangeError) as error:
        print(f"catalog changes: error: {error}", file=sys.stderr)
        return 2
    if arguments.format == "json":
        text = json.dumps(summary_json(changes, preview), indent=1, ensure_ascii=False) + "\n"
    else:
        text = summary_markdown(changes, preview, arguments.limit)
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))  # UTF-8 whatever the locale: the limit counts these bytes
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
