"""A hand-written parser for Sigma conditions.

Grammar (binding strength `or` < `and` < `not`)::

    expression := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | primary
    primary    := "(" expression ")" | ("1" | "all") "of" (pattern | "them") | identifier

A legacy aggregation after `|` (`| count(x) by y > 5`, `| near ...`) is kept as text and flagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Sequence, Union


class ConditionError(ValueError):
    """A condition that cannot be parsed; `offset` is the 0-based character position in the text."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True, slots=True)
class IdentifierRef:
    name: str
    offset: int


@dataclass(frozen=True, slots=True)
class Quantified:
    """`1 of X` (OR of the matches) or `all of X` (AND of the matches); X is a pattern or `them`."""

    quantifier: str  # "1" or "all"
    target: str
    identifiers: tuple[str, ...]
    offset: int

    @property
    def is_any(self) -> bool:
        return self.quantifier == "1"


@dataclass(frozen=True, slots=True)
class Not:
    operand: "ConditionNode"


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple["ConditionNode", ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple["ConditionNode", ...]


ConditionNode = Union[IdentifierRef, Quantified, Not, And, Or]


@dataclass(frozen=True, slots=True)
class Condition:
    text: str  # as written, aggregation included
    expression: ConditionNode
    aggregation: str | None = None  # legacy `| ...` part, kept as text
    uppercase_operators: tuple[str, ...] = ()  # operators written in upper case (accepted, warned)


#: Deeper nesting of parentheses and `not` is refused: no real rule comes near, and the
#: recursive descent (and every walk over the tree) must not exhaust Python's stack.
MAX_NESTING = 100

_TOKEN = re.compile(r"\s*(?:(\()|(\))|([^\s()]+))")
_OPERATORS = {"and", "or", "not", "of", "them", "all", "1"}


def parse_condition(text: str, identifiers: Sequence[str]) -> Condition:
    """Parse `text` against the search identifiers defined in the rule."""
    expression_text, _, aggregation = text.partition("|")
    tokens = list(_tokenize(expression_text))
    if not tokens:
        raise ConditionError("the condition is empty", 0)
    parser = _Parser(tokens, identifiers, len(expression_text))
    expression = parser.expression()
    if parser.position < len(tokens):
        word, offset = tokens[parser.position]
        raise ConditionError(f"unexpected '{word}' after a complete condition", offset)
    return Condition(
        text=text,
        expression=expression,
        aggregation=aggregation.strip() or None if "|" in text else None,
        uppercase_operators=tuple(parser.uppercase),
    )


def _tokenize(text: str) -> Iterator[tuple[str, int]]:
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            break
        position = match.end()
        word = match.group(1) or match.group(2) or match.group(3)
        if word:
            yield word, match.start(match.lastindex)


class _Parser:
    def __init__(self, tokens: list[tuple[str, int]], identifiers: Sequence[str], end: int):
        self.tokens = tokens
        self.identifiers = list(identifiers)
        self.position = 0
        self.end = end
        self.uppercase: list[str] = []
        self.depth = 0

    def peek(self) -> str | None:
        """The next token in lower case if it is an operator word, else as written."""
        if self.position >= len(self.tokens):
            return None
        word = self.tokens[self.position][0]
        return word.lower() if word.lower() in _OPERATORS else word

    def take(self) -> tuple[str, int]:
        word, offset = self.tokens[self.position]
        self.position += 1
        if word.lower() in _OPERATORS and word != word.lower():
            self.uppercase.append(word)
        return word, offset

    def offset(self) -> int:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else self.end

    def expression(self) -> ConditionNode:
        operands = [self.and_expression()]
        while self.peek() == "or":
            self.take()
            operands.append(self.and_expression())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expression(self) -> ConditionNode:
        operands = [self.not_expression()]
        while self.peek() == "and":
            self.take()
            operands.append(self.not_expression())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def nested(self, offset: int) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ConditionError(f"the condition nests 'not' and parentheses more than {MAX_NESTING} levels deep", offset)

    def not_expression(self) -> ConditionNode:
        if self.peek() == "not":
            _, offset = self.take()
            self.nested(offset)
            operand = self.not_expression()
            self.depth -= 1
            return Not(operand)
        return self.primary()

    def primary(self) -> ConditionNode:
        word = self.peek()
        if word is None:
            raise ConditionError("the condition ends where an identifier or '(' was expected", self.end)
        if word == "(":
            _, opened_at = self.take()
            self.nested(opened_at)
            inner = self.expression()
            if self.peek() is None:
                raise ConditionError("'(' is never closed", opened_at)
            if self.peek() != ")":
                word, offset = self.tokens[self.position]
                raise ConditionError(f"unexpected '{word}' where 'and', 'or' or ')' was expected", offset)
            self.take()
            self.depth -= 1
            return inner
        if word in ("1", "all"):
            return self.quantified()
        if word in _OPERATORS or word == ")":
            raise ConditionError(f"'{self.tokens[self.position][0]}' where an identifier was expected", self.offset())
        name, offset = self.take()
        if name not in self.identifiers:
            raise ConditionError(f"'{name}' is not a search identifier defined in detection", offset)
        return IdentifierRef(name, offset)

    def quantified(self) -> Quantified:
        quantifier, offset = self.take()
        if self.peek() != "of":
            raise ConditionError(f"'{quantifier}' must be followed by 'of'", self.offset())
        self.take()
        if self.peek() is None or self.peek() in ("(", ")"):
            raise ConditionError("'of' must be followed by 'them' or an identifier pattern", self.offset())
        target, target_offset = self.take()
        if target.lower() == "them":
            matches = [name for name in self.identifiers if not name.startswith("_")]
            target = "them"
        else:
            matches = [name for name in self.identifiers if pattern_matches(target, name)]
        if not matches:
            raise ConditionError(f"'{target}' matches no search identifier", target_offset)
        return Quantified(quantifier.lower(), target, tuple(matches), offset)


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether an identifier pattern (`selection_*`) takes `name`.

    Sigma patterns know only the `*` wildcard. Like `them`, a pattern leaves out the identifiers
    whose names start with `_`, unless the pattern itself starts with `_` (`1 of _helper*`).
    """
    if name.startswith("_") and not pattern.startswith("_"):
        return False
    if "*" not in pattern:
        return name == pattern
    # the pieces between stars, each found leftmost after the previous one: linear, where a regular
    # expression of many `.*` backtracks for ages (`1 of *a*a*a*...*b` against a long name)
    first, *middle, last = pattern.split("*")
    if len(name) < len(first) + len(last) or not (name.startswith(first) and name.endswith(last)):
        return False
    position, end = len(first), len(name) - len(last)
    for piece in middle:
        position = name.find(piece, position, end)
        if position < 0:
            return False
        position += len(piece)
    return True


def render(node: ConditionNode) -> str:
    """The node as condition text, with parentheses only where binding strength needs them."""
    if isinstance(node, IdentifierRef):
        return node.name
    if isinstance(node, Quantified):
        return f"{node.quantifier} of {node.target}"
    if isinstance(node, Not):
        inner = render(node.operand)
        return f"not {inner}" if isinstance(node.operand, (IdentifierRef, Quantified, Not)) else f"not ({inner})"
    joiner = " and " if isinstance(node, And) else " or "
    parts = []
    for operand in node.operands:
        text = render(operand)
        parts.append(f"({text})" if isinstance(node, And) and isinstance(operand, Or) else text)
    return joiner.join(parts)


def conjuncts(node: ConditionNode) -> tuple[ConditionNode, ...]:
    """The top-level AND terms of a condition, with nested pure-AND groups flattened.

    Parentheses leave no trace in the tree, so `sel and (sel2 and not filter)` is an AND inside an
    AND: both are one conjunction. `all of X` ANDs its members, so each member is a conjunct too.
    Tools that convert rules write `logsource_selection and (...)`; without flattening every
    exclusion inside the parentheses would be lost.
    """
    if isinstance(node, And):
        return tuple(term for operand in node.operands for term in conjuncts(operand))
    if isinstance(node, Quantified) and not node.is_any:
        return tuple(IdentifierRef(name, node.offset) for name in node.identifiers)
    return (node,)


def references(node: ConditionNode, negated: bool = False) -> Iterator[tuple[str, bool]]:
    """Every search identifier the condition reaches, in written order, with its polarity."""
    if isinstance(node, IdentifierRef):
        yield node.name, negated
    elif isinstance(node, Quantified):
        for name in node.identifiers:
            yield name, negated
    elif isinstance(node, Not):
        yield from references(node.operand, not negated)
    else:
        for operand in node.operands:
            yield from references(operand, negated)
