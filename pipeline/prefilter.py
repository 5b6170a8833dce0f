"""A lossless keyword pre-filter compiled from the rule files.

Most notes of a cohort export say nothing about the spine. Before a note
reaches spaCy, one scan of its lower-cased text looks for *anchors*: for
every target rule, a set of literal strings at least one of which any match
of the rule must contain (derived from the rule's regular expression or
phrase, not kept by hand). A note with no anchor cannot produce a mention and
gets status ``no_trigger``.

Anchors are derived with Python's own regex parser: for a sequence, the most
selective required part; for an alternation, the union of its branches; an
optional part contributes nothing. A rule without any required literal would
make every note pass: :func:`compile_prefilter` then keeps every note (lossless
first, fast second).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

try:  # Python 3.11+
    import re._parser as sre_parse  # type: ignore[import-not-found]
    from re._constants import (  # type: ignore[import-not-found]
        BRANCH, IN, LITERAL, MAX_REPEAT, MIN_REPEAT, SUBPATTERN, AT, NOT_LITERAL, ASSERT, ASSERT_NOT,
        GROUPREF, ANY, CATEGORY, POSSESSIVE_REPEAT, ATOMIC_GROUP,
    )
except ImportError:  # pragma: no cover
    import sre_parse  # type: ignore[no-redef]
    from sre_constants import (  # type: ignore[no-redef]
        BRANCH, IN, LITERAL, MAX_REPEAT, MIN_REPEAT, SUBPATTERN, AT, NOT_LITERAL, ASSERT, ASSERT_NOT,
        GROUPREF, ANY, CATEGORY,
    )
    POSSESSIVE_REPEAT = ATOMIC_GROUP = None

from .nlp.labs import INR, PLATELETS, PT, PT_INR
from .nlp.rules import RuleSet

ZERO_WIDTH = {AT, ASSERT, ASSERT_NOT}


def _score(anchors: frozenset[str]) -> int:
    """How selective an anchor set is: its shortest string (longer is rarer)."""
    return min(len(anchor) for anchor in anchors)


def _anchors(items) -> frozenset[str] | None:
    """Literal strings one of which every match of the parsed sequence contains."""
    candidates: list[frozenset[str]] = []
    run: list[str] = []

    def close_run():
        if run:
            candidates.append(frozenset({"".join(run)}))
            run.clear()

    for op, argument in items:
        if op == LITERAL:
            run.append(chr(argument).lower())
            continue
        if op in ZERO_WIDTH:
            continue  # \b, lookarounds: consume nothing, do not break a run
        if op == IN and len(argument) == 1 and argument[0][0] == LITERAL:
            run.append(chr(argument[0][1]).lower())
            continue
        if op == IN:
            # a class of case variants of one letter ([Tt]) is that letter
            letters = {chr(value).lower() for kind, value in argument if kind == LITERAL}
            if len(letters) == 1 and all(kind == LITERAL for kind, _ in argument):
                run.append(letters.pop())
                continue
        close_run()
        inner = None
        if op == SUBPATTERN:
            inner = _anchors(argument[-1])
        elif op == BRANCH:
            branches = [_anchors(branch) for branch in argument[1]]
            if all(branch is not None for branch in branches):
                inner = frozenset().union(*branches)
        elif op in (MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT) and op is not None:
            low, _high, item = argument
            if low >= 1:
                inner = _anchors(item)
        elif op == ATOMIC_GROUP and op is not None:
            inner = _anchors(argument)
        if inner:
            candidates.append(inner)
    close_run()
    candidates = [anchors for anchors in candidates if anchors and all(anchors)]
    if not candidates:
        return None
    return max(candidates, key=_score)


def regex_anchors(pattern: str) -> frozenset[str] | None:
    """Anchors of a regular expression (None when a match needs no literal)."""
    return _anchors(sre_parse.parse(pattern, re.IGNORECASE))


def rule_anchors(rule: dict) -> frozenset[str] | None:
    pattern = rule.get("pattern")
    if pattern is None:
        return frozenset({rule["literal"].lower()})
    if isinstance(pattern, str):
        return regex_anchors(pattern)
    # a token pattern: the first token with a literal LOWER/ORTH/TEXT value
    for token in pattern:
        for key in ("LOWER", "ORTH", "TEXT"):
            value = token.get(key)
            if isinstance(value, str) and token.get("OP") not in ("?", "*"):
                return frozenset({value.lower()})
            if isinstance(value, dict) and "IN" in value and token.get("OP") not in ("?", "*"):
                return frozenset(v.lower() for v in value["IN"])
    return None


@dataclass
class Prefilter:
    """``prefilter(text)`` is True when the note may hold a mention."""

    anchors: frozenset[str]
    keep_all: bool = False

    def __post_init__(self):
        ordered = sorted(self.anchors, key=len, reverse=True)
        self._scan = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> bool:
        if self.keep_all:
            return True
        if not text or self._scan is None:
            return False
        return self._scan.search(text.lower()) is not None


def compile_prefilter(rules: RuleSet) -> Prefilter:
    """The pre-filter for a rule set: target rules (not IGNORE) and lab patterns."""
    anchors: set[str] = set()
    for rule in rules.target:
        if rule.get("category") == "IGNORE":
            continue
        found = rule_anchors(rule)
        if not found:
            return Prefilter(frozenset(), keep_all=True)
        anchors |= found
    for pattern in (PT_INR, INR, PT, PLATELETS):
        found = regex_anchors(pattern.pattern)
        if not found:
            return Prefilter(frozenset(), keep_all=True)
        anchors |= found
    return Prefilter(frozenset(anchors))
