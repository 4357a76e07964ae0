"""A rule's condition as a tree (and / or / not / 1 of / all of), each leaf linked to its stage.

The numbered stages of a rule page read as a flat list; the tree shows which stages are
alternatives. Leaves are numbered in the order `catalog.conditions.references` walks the
condition, which is the order the stages are numbered in (catalog.analysis).
"""

from __future__ import annotations

from itertools import count

from catalog.conditions import And, Condition, ConditionNode, IdentifierRef, Not, Or, Quantified
from catalog.model import FilterRule, Rule
from catalog.pipeline import Entry


def stage_anchor(condition_index: int, number: int) -> str:
    """`stage-N` for the stages of the (first) condition; later conditions of a list get their own."""
    return f"stage-{number}" if condition_index == 0 else f"condition-{condition_index + 1}-stage-{number}"


def has_alternatives(node: ConditionNode) -> bool:
    """Whether the condition has an `or` or a `1 of` (where the flat stage list misleads)."""
    if isinstance(node, Or):
        return True
    if isinstance(node, Quantified):
        return node.is_any and len(node.identifiers) > 1
    if isinstance(node, Not):
        return has_alternatives(node.operand)
    if isinstance(node, And):
        return any(has_alternatives(operand) for operand in node.operands)
    return False


def condition_tree(condition: Condition, condition_index: int = 0) -> dict:
    """The tree as plain data: {"op", "children"} for operators ("1 of" and "all of" with their
    "target" pattern), {"name", "number", "anchor"} for leaves (op None)."""
    return _node(condition.expression, count(1), condition_index)


def _leaf(name: str, numbers: count, condition_index: int) -> dict:
    number = next(numbers)
    return {"op": None, "target": None, "name": name, "number": number, "anchor": stage_anchor(condition_index, number), "children": []}


def _node(node: ConditionNode, numbers: count, condition_index: int) -> dict:
    if isinstance(node, IdentifierRef):
        return _leaf(node.name, numbers, condition_index)
    if isinstance(node, Quantified):
        return {"op": f"{'1' if node.is_any else 'all'} of", "target": node.target,
                "children": [_leaf(name, numbers, condition_index) for name in node.identifiers]}
    if isinstance(node, Not):
        return {"op": "not", "target": None, "children": [_node(node.operand, numbers, condition_index)]}
    operands = []  # nested operators of the same kind read as one: a and (b and c) is a and b and c
    for operand in node.operands:
        child = _node(operand, numbers, condition_index)
        same = type(operand) is type(node)
        operands.extend(child["children"] if same else [child])
    return {"op": "and" if isinstance(node, And) else "or", "target": None, "children": operands}


def trees(entry: Entry) -> list[dict | None]:
    """Per condition, its tree where it has alternatives (an `or`, a `1 of`), else None."""
    document = entry.document
    if entry.analysis is None or not isinstance(document, (Rule, FilterRule)):
        return []
    return [condition_tree(condition, index) if has_alternatives(condition.expression) else None
            for index, condition in enumerate(document.detection.conditions)]


#: A stage longer than this many lines is folded (and its body shown in two parts).
STAGE_FOLD_LINES = 20


def add_stage_anchors(stages: list[dict]) -> None:
    """Each stage's anchor (`stage-N`, N its number), which condition it belongs to, and whether it
    starts folded: Stage 0 and short stages open, long ones closed, their first lines shown apart."""
    condition_index = -1
    for stage in stages:
        if stage["number"] == 0:
            condition_index += 1
        stage["anchor"] = stage_anchor(condition_index, stage["number"])
        stage["condition_index"] = condition_index
        lines = stage["body"].splitlines(keepends=True)  # (the body as cut at STAGE_BODY: `more` lines left out)
        stage["open"] = stage["number"] == 0 or len(lines) + stage["more"] <= STAGE_FOLD_LINES
        stage["head"] = "".join(lines[:STAGE_FOLD_LINES]) if not stage["open"] else stage["body"]
        stage["rest"] = "".join(lines[STAGE_FOLD_LINES:]) if not stage["open"] else ""
        stage["rest_lines"] = max(0, len(lines) - STAGE_FOLD_LINES) if not stage["open"] else 0
        stage["lines"] = len(lines) + stage["more"]
