"""A rule's condition as a tree (and / or / not / 1 of / all of), each leaf linked to its stage.

The numbered stages of a rule page read as a flat list; the tree shows which stages are
alternatives. Leaves are numbered in the order `catalog.conditions.references` walks the
condition, which is the order the stages are numbered in (catalog.analysis).
"""

from __future__ import annotations

from itertools import count

from catalog.conditions import And, Condition, ConditionNode, IdentifierRef, Not, Or, Quantified


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
