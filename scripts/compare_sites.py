#!/usr/bin/env python3
"""Byte-for-byte comparison of the catalog's output against a saved baseline, for refactors.

    python scripts/compare_sites.py save BASELINE [--only rules,changes,sigmahq,check] [--work DIR]
    python scripts/compare_sites.py compare BASELINE [--only ...] [--work DIR]

`save` builds every output with this checkout's `catalog` package and keeps it under BASELINE;
`compare` builds again and lists every file that is new, missing or different (exit 1 if any).
Run `save` on the code before the change, `compare` after it.

The outputs:

- `rules`: the site of this repository's rules/ (its mkdocs.yml, docs/ and rules/, copied);
- `changes`: the same site built by `catalog build --base HEAD` in a git copy where one rule was
  edited, one deleted and one added: the Changes page and the change banners;
- `sigmahq`: the site of the SigmaHQ corpus, all its folders (skipped when the corpus is absent);
- `check`: `catalog check` (text, json, github) and `catalog analyze --json` on rules/ and SigmaHQ,
  and `catalog check --config` (the rule folders read from an mkdocs.yml); timings masked.

Every build gets the same SOURCE_DATE_EPOCH, PYTHONHASHSEED and cold caches (the ATT&CK cache too), and runs in projects
at the same place (--work), so nothing but the code can make two runs differ. The build logs are
saved too (numbers with a decimal point masked) and compared like files.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared/corpora/sigmahq"
FOLDERS = ["rules", "rules-emerging-threats", "rules-threat-hunting", "rules-placeholder", "rules-compliance",
           "deprecated", "unsupported"]
OUTPUTS = ("rules", "changes", "sigmahq", "check")
EPOCH = "1767225600"  # 2026-01-01T00:00:00Z
GIT_DATE = "2026-01-01T00:00:00Z"
_FLOAT = re.compile(r"\d+\.\d+")


def environment(work: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("SOURCE_DATE_EPOCH", "PYTHONPATH")}
    env.update(
        PYTHONPATH=str(REPO), SOURCE_DATE_EPOCH=EPOCH, PYTHONHASHSEED="0", NO_MKDOCS_2_WARNING="1",
        PYTHONDONTWRITEBYTECODE="1", CATALOG_CACHE_DIR=str(work / "attack-cache"),
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.org", GIT_AUTHOR_DATE=GIT_DATE, GIT_COMMITTER_DATE=GIT_DATE,
    )
    return env


def run(command: list[str], cwd: Path, env: dict, log: Path | None = None, ok: tuple[int, ...] = (0,)) -> str:
    """Run `command`; its stderr (the build log) goes to `log`, with what varies between runs masked."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode not in ok:
        sys.exit(f"{' '.join(command)} (in {cwd}) exited with {result.returncode}:\n{result.stderr[-4000:]}")
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        text = result.stderr.replace(str(log.parent), "OUT")
        log.write_text(_FLOAT.sub("N", text), encoding="utf-8")
    return result.stdout


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


#: The docs pages the sites are built with (--docs: those of the baseline, when a change edits docs/).
DOCS = [REPO / "docs"]


def repository_project(work: Path, name: str) -> Path:
    project = fresh(work / name)
    shutil.copytree(REPO / "rules", project / "rules")
    shutil.copytree(DOCS[0], project / "docs")
    shutil.copy(REPO / "mkdocs.yml", project / "mkdocs.yml")
    return project


def build_rules(work: Path, out: Path, env: dict) -> None:
    project = repository_project(work, "project-rules")
    run([sys.executable, "-m", "mkdocs", "build", "-q", "-d", str(out / "site")], project, env, out / "build.log")


def build_changes(work: Path, out: Path, env: dict) -> None:
    project = repository_project(work, "project-changes")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        run(["git", *args], project, env)
    rules = sorted(path for path in (project / "rules").rglob("*.yml"))
    edited, deleted, copied = rules[0], rules[1], rules[2]
    text = edited.read_text(encoding="utf-8")
    edited.write_text(re.sub(r"^title: (.*)$", r"title: \1 (edited)", text, count=1, flags=re.M)
                      .replace("level: ", "level: high\nx_old_level: ", 1), encoding="utf-8")
    deleted.unlink()
    added = copied.read_text(encoding="utf-8")
    added = re.sub(r"^id: .*$", "id: 5f0b8a0e-1c2d-4e3f-9a8b-7c6d5e4f3a2b", added, count=1, flags=re.M)
    added = re.sub(r"^title: (.*)$", r"title: \1 (a new copy)", added, count=1, flags=re.M)
    (copied.parent / ("added-" + copied.name)).write_text(added, encoding="utf-8")
    run([sys.executable, "-m", "catalog.cli", "build", "--base", "HEAD", "--site-dir", str(out / "site")],
        project, env, out / "build.log")


def sigmahq_folders() -> list[Path]:
    return [CORPUS / name for name in FOLDERS if (CORPUS / name).is_dir()]


def build_sigmahq(work: Path, out: Path, env: dict) -> None:
    project = fresh(work / "project-sigmahq")
    (project / "docs").mkdir()
    listed = "".join(f"        - {folder}\n" for folder in sigmahq_folders())
    (project / "mkdocs.yml").write_text(
        "site_name: SigmaHQ\ntheme:\n  name: material\nplugins:\n  - sigma-catalog:\n      rules:\n" + listed,
        encoding="utf-8",
    )
    run([sys.executable, "-m", "mkdocs", "build", "-q", "-d", str(out / "site")], project, env, out / "build.log")


def _masked(text: str) -> str:
    text = re.sub(r'"seconds": [0-9.]+', '"seconds": N', text)
    return re.sub(r"; [0-9.]+ s$", "; N s", text, flags=re.M)


def run_checks(work: Path, out: Path, env: dict) -> None:
    project = repository_project(work, "project-check")
    corpora = {"rules": [str(project / "rules")]}
    if CORPUS.is_dir():
        corpora["sigmahq"] = [str(folder) for folder in sigmahq_folders()]
    out.mkdir(parents=True, exist_ok=True)
    catalog = [sys.executable, "-m", "catalog.cli"]
    for name, paths in corpora.items():
        for form in ("text", "json", "github"):
            text = run([*catalog, "check", "--format", form, *paths], project, env, ok=(0, 1))
            (out / f"check-{name}.{form}").write_text(_masked(text), encoding="utf-8")
        text = run([*catalog, "analyze", "--quiet", "--json", "-", *paths], project, env)
        (out / f"analyze-{name}.json").write_text(text, encoding="utf-8")
    text = run([*catalog, "check", "--config", str(project / "mkdocs.yml")], project.parent, env, ok=(0, 1))
    (out / "check-config.text").write_text(_masked(text), encoding="utf-8")


BUILDERS = {"rules": build_rules, "changes": build_changes, "sigmahq": build_sigmahq, "check": run_checks}


def tree(root: Path) -> dict[str, Path]:
    return {path.relative_to(root).as_posix(): path for path in sorted(root.rglob("*")) if path.is_file()}


def compare(expected: Path, actual: Path) -> list[str]:
    old, new = tree(expected), tree(actual)
    lines = [f"missing: {name}" for name in sorted(set(old) - set(new))]
    lines += [f"new:     {name}" for name in sorted(set(new) - set(old))]
    lines += [f"differs: {name}" for name in sorted(set(old) & set(new)) if old[name].read_bytes() != new[name].read_bytes()]
    print(f"{expected.name}: {len(old)} files in the baseline, {len(new)} built, {len(lines)} differences")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("save", "compare"))
    parser.add_argument("baseline", type=Path)
    parser.add_argument("--only", default=",".join(OUTPUTS), help="comma-separated: " + ", ".join(OUTPUTS))
    parser.add_argument("--docs", type=Path, default=REPO / "docs",
                        help="the docs/ folder to build with (default: this checkout's; give the baseline's when docs changed)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/catalog-compare-sites"), help="where the projects are built")
    arguments = parser.parse_args(argv)
    names = [name.strip() for name in arguments.only.split(",") if name.strip()]
    unknown = set(names) - set(OUTPUTS)
    if unknown:
        parser.error(f"unknown outputs: {', '.join(sorted(unknown))}")
    if "sigmahq" in names and not CORPUS.is_dir():
        print(f"sigmahq: skipped, the corpus is not at {CORPUS}")
        names.remove("sigmahq")
    work = arguments.work.resolve()
    shutil.rmtree(work / "attack-cache", ignore_errors=True)  # the ATT&CK data is extracted again too
    DOCS[0] = arguments.docs.resolve()
    env = environment(work)
    differences = []
    for name in names:
        target = arguments.baseline / name if arguments.action == "save" else work / "built" / name
        shutil.rmtree(target, ignore_errors=True)
        BUILDERS[name](work, target, env)
        if arguments.action == "compare":
            differences += [f"{name}/{line}" for line in compare(arguments.baseline / name, target)]
        else:
            print(f"{name}: saved {len(tree(target))} files under {target}")
    for line in differences[:200]:
        print(line)
    if len(differences) > 200:
        print(f"... and {len(differences) - 200} more")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
