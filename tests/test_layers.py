"""The shape of the package: the pipeline's steps import only earlier steps, the core never imports
the site, and no module or function grows past what one reader holds at once."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "catalog"

#: The steps in order; a module may import modules of its own step and of earlier steps only.
#: Every module of the package must be listed (a new one takes its place here).
STEPS: list[tuple[str, set[str]]] = [
    ("foundation", {"catalog.problems", "catalog.timelimit", "catalog.yamlsafe", "catalog.yamltext", "catalog.modifiers",
                    "catalog.conditions"}),
    ("model", {"catalog.model"}),
    ("read documents", {"catalog.typedfields", "catalog.reader"}),
    ("load", {"catalog.files", "catalog.loader"}),
    ("analyse", {"catalog.analysis"}),
    ("index the corpus", {"catalog.corpus", "catalog.bounds"}),
    ("map ATT&CK", {"catalog.attack", "catalog.attack.description", "catalog.attack.knowledge", "catalog.attack.snapshot", "catalog.attack.mapping",
                    "catalog.attack.commands"}),
    ("test evidence", {"catalog.evidence"}),
    ("pipeline", {"catalog.pipeline"}),
    ("catalog data", {"catalog.jsonexport", "catalog.git", "catalog.changes", "catalog.history", "catalog.similarity", "catalog.conversions",
                      "catalog.conversion_worker"}),
    ("diff", {"catalog.diff"}),
    ("rule history", {"catalog.revisions"}),
    ("catalog-wide findings", {"catalog.findings"}),
    ("site: addresses, configuration", {"catalog.site.addresses", "catalog.site.config"}),
    ("site: model, rendering", {"catalog.site.yaml_html", "catalog.site.render", "catalog.site.lists", "catalog.site.model"}),
    ("site: page families", {"catalog.site.rule_page", "catalog.site.attack_pages", "catalog.site.browse_pages",
                             "catalog.site.changes_page", "catalog.site.search",
                             "catalog.site.history_pages", "catalog.site.queries", "catalog.site.overlap",
                             "catalog.site.rule_facts", "catalog.site.condition_tree"}),
    ("site: whole site, exports", {"catalog.site.pages", "catalog.site.exports"}),
    ("site: output", {"catalog.site.rendering", "catalog.site.output"}),
    ("site: MkDocs files", {"catalog.site.files"}),
    ("site: serving", {"catalog.site.live"}),
    ("site: MkDocs plugin", {"catalog.site.plugin"}),
    ("commands", {"catalog.check", "catalog.check_reports", "catalog.change_summary", "catalog.changelog"}),
    ("command line", {"catalog.cli", "catalog.__main__"}),
]
#: Packages whose __init__ only documents (importing a module through them is importing the module).
PLAIN_PACKAGES = {"catalog", "catalog.site"}
#: Steps that make the core: they never import catalog.site.
CORE = {module for name, modules in STEPS[: [n for n, _ in STEPS].index("catalog-wide findings") + 1] for module in modules}

MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
#: Functions still over the limit, in modules being reworked elsewhere; this list only shrinks.
LONG_FUNCTIONS: set[tuple[str, str]] = set()
#: Modules still over the limit, being reworked elsewhere; this list only shrinks.
LONG_MODULES = {"catalog/attack/knowledge.py"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules that `path` imports (anywhere in it, TYPE_CHECKING and functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "catalog":
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                found.add(target if target in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "catalog")
    return found - PLAIN_PACKAGES


def test_every_module_has_its_step():
    listed = [module for _, group in STEPS for module in group]
    assert len(listed) == len(set(listed))
    assert set(modules()) - PLAIN_PACKAGES == set(listed)


def test_no_step_imports_a_later_one():
    step_of = {module: index for index, (_, group) in enumerate(STEPS) for module in group}
    known = set(modules())
    wrong = [
        f"{module} ({STEPS[step_of[module]][0]}) imports {target} ({STEPS[step_of[target]][0]})"
        for module, path in modules().items() if module in step_of
        for target in sorted(imports(path, known)) if step_of.get(target, -1) > step_of[module]
    ]
    assert wrong == []


def test_the_core_never_imports_the_site():
    known = set(modules())
    wrong = [(module, target) for module, path in modules().items() if module in CORE
             for target in imports(path, known) if target.startswith("catalog.site")]
    assert wrong == []


def test_modules_and_functions_stay_small():
    long_modules, long_functions = set(), set()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            long_modules.add(relative)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                    long_functions.add((relative, node.name))
    assert long_modules <= LONG_MODULES, f"modules over {MAX_MODULE_LINES} lines: {sorted(long_modules - LONG_MODULES)}"
    assert long_functions <= LONG_FUNCTIONS, f"functions over {MAX_FUNCTION_LINES} lines: {sorted(long_functions - LONG_FUNCTIONS)}"


def test_the_checks_can_fail(tmp_path):
    """The import scan sees an import of a later step."""
    late = tmp_path / "late.py"
    late.write_text("from catalog.site.plugin import CatalogPlugin\n", encoding="utf-8")
    assert imports(late, set(modules())) == {"catalog.site.plugin"}
