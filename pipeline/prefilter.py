"""A lossless keyword pre-filter compiled from the rule files.

Most notes of a cohort export say nothing about the spine. Before a note
reaches spaCy, one scan of its case-folded text looks for *anchors*: for
every target rule, a set of literal strings at least one of which any match
of the rule must contain (derived from the rule's regular expression, token
pattern or phrase; never kept by hand). A note in which no target rule and
no lab pattern can match gets status ``no_trigger`` and skips the NLP.

Anchors are derived with Python's own regex parser (:func:`regex_plan`).
Each part of a pattern is either *exact* (a small finite set of strings it
can match: ``fractures?`` is ``{fracture, fractures}``) or not; exact parts
next to each other multiply out (``\\bp(?:t|rothrombin)`` is ``{pt,
prothrombin}``), a word boundary ``\\b`` next to an exact part is kept as a
flag of the anchor (``\\bPT\\b`` only counts where "pt" is a whole word, not
in "symptom"), an alternation is the union of its branches (split into
whole alternatives, so that literals on both sides of it join up), optional
parts contribute nothing, the text of a look-behind or look-ahead counts,
and of all the literal sets a match must contain the most selective is
kept. When every match also *starts* with one of a set of literals, those
are the rule's start anchors: the regex is then only tried where they occur
(``pattern.match(text, position)``), not at every character. A rule
without any usable literal (or only single letters) gets no anchor: its
regular expression is then run on every note (still lossless, only slower).

The scan is an Aho-Corasick automaton (``pyahocorasick``) over the
case-folded text (:func:`fold`: the folding ``re.IGNORECASE`` does, one
character for one): one pass finds every anchor; a hit whose word-boundary
flags do not hold is dropped. The note is then *verified*: the regular
expressions of the rules whose anchors occur are run, as medspaCy runs them
(``re.IGNORECASE`` on the original text, or their :func:`case_free` form on
the folded text, which finds the same spans faster), and the note passes on
the first match. Anchors only decide which regexes to run and where; the
decision is the rules' own regular expressions, so the filter drops a note
exactly when no target rule and no lab pattern matches anywhere in it, i.e.
when the pipeline could not produce a mention.

Inside the pipeline the same anchors drive :class:`FastRegexMatcher`, a
drop-in for medspaCy's regex matcher: the text is taken once (not rebuilt
from the tokens for every rule) and only the rules whose anchors occur run,
where they can start (:func:`speed_up_matcher`).

Analysing the shipped rules' regexes takes most of a second, which every
run would pay at start-up: their analyses ship in a table made ahead
(:data:`ANALYSES`, ``make analyses``), read only when this very module made
it on this Python version.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import re._parser as sre_parse  # type: ignore[import-not-found]  # Python 3.11+
import sys
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from re._constants import (  # type: ignore[import-not-found]
    ANY,
    ASSERT,
    ASSERT_NOT,
    AT,
    AT_BEGINNING,
    AT_BEGINNING_STRING,
    AT_BOUNDARY,
    AT_LOC_BOUNDARY,
    AT_UNI_BOUNDARY,
    ATOMIC_GROUP,
    BRANCH,
    CATEGORY,
    IN,
    LITERAL,
    MAX_REPEAT,
    MIN_REPEAT,
    NOT_LITERAL,
    POSSESSIVE_REPEAT,
    RANGE,
    SUBPATTERN,
)
from typing import Any, NamedTuple

import ahocorasick

from .nlp.labs import INR, PLATELETS, PT, PT_INR, PT_PTT_INR
from .nlp.rules import RuleSet

__all__ = [
    "Anchor",
    "FastRegexMatcher",
    "Plan",
    "Prefilter",
    "RuleGate",
    "anchored_finditer",
    "compile_prefilter",
    "fold",
    "regex_anchors",
    "regex_plan",
    "regex_prefix",
    "rule_anchors",
    "speed_up_matcher",
]

# --------------------------------------------------------------------------------------------
# Case folding: the scanned text and the anchors must agree with re.IGNORECASE.
# --------------------------------------------------------------------------------------------

#: Non-ASCII characters that re.IGNORECASE matches to an ASCII letter
#: (sre's simple lower-casing plus its extra case pairs, ``re._casefix``):
#: ``İ`` (U+0130) and ``ı`` (U+0131) match ``i``, ``ſ`` (U+017F) matches ``s``,
#: the Kelvin sign (U+212A) matches ``k``. ``str.lower()`` alone does not map
#: them onto the ASCII letter (``"İ".lower()`` is two characters), so they are
#: translated first. tests/test_prefilter.py checks this table against ``re``
#: over every code point.
_TO_ASCII = {0x130: "i", 0x131: "i", 0x17F: "s", 0x212A: "k"}


def fold(text: str) -> str:
    """Case-fold ``text`` for the anchor scan; same length, same word characters.

    An ASCII character of an anchor matches a character of ``text`` under
    ``re.IGNORECASE`` if and only if it equals the folded character.
    """
    if text.isascii():
        return text.lower()
    return text.translate(_TO_ASCII).lower()


def _is_word(char: str) -> bool:
    """A word character for ``\\b`` in a Unicode ``str`` pattern."""
    return char.isalnum() or char == "_"


# --------------------------------------------------------------------------------------------
# Anchor derivation
# --------------------------------------------------------------------------------------------

class Anchor(NamedTuple):
    """A literal every match contains: ``text`` (case-folded, ASCII) plus word-boundary flags.

    ``word_start``: the rule has a ``\\b`` right before the literal;
    ``word_end``: right after it.
    """

    text: str
    word_start: bool = False
    word_end: bool = False

    def __repr__(self) -> str:
        boundary = "\\b"
        return (boundary if self.word_start else "") + self.text + (boundary if self.word_end else "")


_B = "\x00"        # a word boundary inside an exact string
_LIMIT = 64        # most strings an exact set may hold
_SPLIT_BUDGET = 32   # most alternatives a sequence is split into
_CLASS_LIMIT = 16  # largest character class kept as an exact set


class _Info(NamedTuple):
    """What the analysis knows about one part of a pattern.

    ``exact``: every string it can match (None: unknown / too many);
    ``prefix`` / ``suffix``: every match starts / ends with one of these
    (``""`` in the set: nothing known); ``options``: anchor sets, every match
    contains a string of each (most selective first; empty: none known).
    """

    exact: frozenset[str] | None
    prefix: frozenset[str]
    suffix: frozenset[str]
    options: tuple[frozenset[str], ...]

    @property
    def best(self) -> frozenset[str] | None:
        return self.options[0] if self.options else None


_NOTHING = frozenset({""})
_UNKNOWN = _Info(None, _NOTHING, _NOTHING, ())
_OPTIONS = 6  # anchor sets kept per part


def _canonical(string: str) -> str:
    """Keep only a boundary marker at either end (one inside says nothing more)."""
    core = string.replace(_B, "")
    if not core:
        return _B if _B in string else ""
    return (_B if string.startswith(_B) else "") + core + (_B if string.endswith(_B) else "")


def _product(left: frozenset[str], right: frozenset[str]) -> frozenset[str] | None:
    if len(left) * len(right) > _LIMIT:
        return None
    return frozenset(_canonical(a + b) for a in left for b in right)


def _usable(strings: frozenset[str] | None) -> bool:
    """An anchor set: every string has a non-empty ASCII literal core."""
    if not strings:
        return False
    return all(s.replace(_B, "") and s.isascii() for s in strings)


def _merge(strings: Iterable[str], *, starts: bool = False) -> frozenset[str]:
    """One string per literal core; the same core with other flags keeps only the common flags.

    A string that holds another one (with its flags) adds nothing and goes; with ``starts``
    (a set of strings every match *starts* with) only one that begins with the other: the
    match "post-kyphoplasty" does not start where "kyphoplasty" does.
    """
    return _merge_set(frozenset(strings), starts)


@functools.lru_cache(maxsize=65536)
def _merge_set(strings: frozenset[str], starts: bool = False) -> frozenset[str]:
    flags: dict[str, tuple[bool, bool]] = {}
    for string in strings:
        core = string.replace(_B, "")
        start, end = string.startswith(_B), string.endswith(_B)
        if core in flags:
            start, end = start and flags[core][0], end and flags[core][1]
        flags[core] = (start, end)
    kept = {core: value for core, value in flags.items()
            if not any(other != core and other in core and _implies(core, value, other, flags[other], at_start=starts)
                       for other in flags)}
    return frozenset((_B if start else "") + core + (_B if end else "") for core, (start, end) in kept.items())


def _implies(core: str, flags: tuple[bool, bool], other: str, other_flags: tuple[bool, bool], *,
             at_start: bool = False) -> bool:
    """Every occurrence of ``core`` (with its boundary flags) holds one of ``other`` (with its flags);
    with ``at_start``, one at its first character."""
    index = core.find(other)
    while index >= 0 and not (at_start and index):
        end = index + len(other)
        start_ok = not other_flags[0] or (flags[0] if index == 0 else
                                          _is_word(core[index - 1]) != _is_word(core[index]))
        end_ok = not other_flags[1] or (flags[1] if end == len(core) else
                                        _is_word(core[end - 1]) != _is_word(core[end]))
        if start_ok and end_ok:
            return True
        index = core.find(other, index + 1)
    return False


@functools.lru_cache(maxsize=65536)
def _cost(strings: frozenset[str]) -> float:
    """Rough chance of a hit: a longer or word-bounded string is rarer.

    Summed exactly (``math.fsum``): a plain float sum depends on the order a set
    yields its strings, which changes with the string hash seed of each process,
    and two sets of equal cost then ranked differently from one run to the next.
    """
    return math.fsum(12.0 ** -(len(string.replace(_B, "")) + 0.6 * (string.startswith(_B) + string.endswith(_B)))
                     for string in strings)


def _rank(candidates: Iterable[frozenset[str] | None]) -> tuple[frozenset[str], ...]:
    usable = {_merge(c) for c in candidates if _usable(c)}
    return tuple(sorted(usable, key=lambda c: (_cost(c), sorted(c))))[:_OPTIONS]


def _exact(strings: Iterable[str]) -> _Info:
    strings = frozenset(_canonical(s) for s in strings)
    return _Info(strings, strings, strings, _rank([strings]))


def _fold_char(code: int) -> str:
    return _TO_ASCII.get(code) or chr(code).lower()


def _class_chars(items) -> frozenset[str] | None:
    chars: set[str] = set()
    for op, av in items:
        if op == LITERAL:
            chars.add(_fold_char(av))
        elif op == RANGE and av[1] - av[0] < _CLASS_LIMIT:
            chars.update(_fold_char(code) for code in range(av[0], av[1] + 1))
        else:  # NEGATE, CATEGORY, a wide range
            return None
    if len(chars) > _CLASS_LIMIT:
        return None
    return frozenset(chars)


def _flatten(items) -> list:
    flat = []
    for op, av in items:
        if op == SUBPATTERN:
            flat.extend(_flatten(av[-1]))
        elif op == ATOMIC_GROUP:
            flat.extend(_flatten(av))
        else:
            flat.append((op, av))
    return flat


def _is_optional(op, av) -> bool:
    return op in (MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT) and av[0] == 0 and av[1] == 1


_MEMO: dict = {}  # analysis results of the pattern being analysed, by the ids of its parts


class _Found(NamedTuple):
    """What the analysis of a whole pattern gives its callers: the best anchor set (every
    match contains one of its strings; None: none usable) and the strings every match
    starts with (``""`` in the set: nothing known)."""

    best: frozenset[str] | None
    prefix: frozenset[str]


def _analyse(pattern: str, flags: int) -> _Found:
    """The analysis of a whole pattern, from the shipped table (:data:`ANALYSES`) or computed.

    Analysed once per pattern: ``regex_plan(p)`` (``re.IGNORECASE``) and the
    pattern compiled from ``p`` (its flags also hold ``re.UNICODE`` and any
    inline flags) parse to the same tree, so they share one entry.
    """
    flags = _analysis_flags(pattern, flags)
    shipped = _shipped_analyses().get(_analysis_entry(pattern, flags))
    return shipped if shipped is not None else _computed_analysis(pattern, flags)


@functools.lru_cache(maxsize=4096)
def _computed_analysis(pattern: str, flags: int) -> _Found:
    """The analysis itself (parts shared between split alternatives are analysed once)."""
    parsed = sre_parse.parse(pattern, flags)
    _MEMO.clear()
    try:
        info = _sequence(parsed)
    finally:
        _MEMO.clear()
    return _Found(info.best, info.prefix)


#: The analyses of the shipped rules' patterns, computed ahead (:func:`write_analyses`):
#: computing them costs a cold start most of a second, which every CLI run would pay. The
#: table is used only if this very file, on this Python version, made it
#: (:func:`_analysis_key`); any other pattern, or a stale table, is analysed as it comes.
ANALYSES = Path(__file__).with_name("prefilter_analyses.json")


@functools.cache
def _analysis_key() -> str:
    """This module's source and the Python version (whose ``re`` parser the analysis reads)."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(("python %d.%d" % sys.version_info[:2]).encode())
    return digest.hexdigest()


def _analysis_flags(pattern: str, flags: int) -> int:
    """The flags the pattern runs with, inline ones included (``re.UNICODE`` goes without saying)."""
    return re.compile(pattern, flags).flags & ~re.UNICODE


def _analysis_entry(pattern: str, flags: int) -> str:
    return f"{int(flags)}:{pattern}"


@functools.cache
def _shipped_analyses() -> dict[str, _Found]:
    try:
        table = json.loads(ANALYSES.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(table, dict) or table.get("key") != _analysis_key():
        return {}
    try:
        return {entry: _Found(None if found["best"] is None else frozenset(found["best"]), frozenset(found["prefix"]))
                for entry, found in table["analyses"].items()}
    except (KeyError, TypeError, AttributeError):  # not a table this module wrote
        return {}


def shipped_patterns() -> list[str]:
    """The regular expressions of the shipped rules and lab values (case-insensitive, as run)."""
    from .nlp.rules import load_rules

    rules = load_rules([])
    patterns = [rule["pattern"] for rule in (*rules.target, *rules.sections, *rules.context)
                if isinstance(rule.get("pattern"), str)]
    return patterns + [pattern.pattern for pattern in LAB_PATTERNS.values()]


def write_analyses(path: Path = ANALYSES) -> int:
    """Write the table of :data:`ANALYSES` for the shipped patterns; return its size.

    Run after changing this module or a rule's regex (``make analyses``); a
    test fails while the table is out of date.
    """
    analyses = {}
    for pattern in shipped_patterns():
        flags = _analysis_flags(pattern, re.IGNORECASE)
        found = _computed_analysis(pattern, flags)
        analyses[_analysis_entry(pattern, flags)] = {
            "best": None if found.best is None else sorted(found.best), "prefix": sorted(found.prefix)}
    path.write_text(json.dumps({"key": _analysis_key(), "analyses": analyses}, indent=1, sort_keys=True)
                    + "\n", encoding="utf-8")
    return len(analyses)


def _node(op, av, budget: int) -> _Info:
    key = ("node", op, id(av), budget)
    found = _MEMO.get(key)
    if found is None:
        found = _MEMO[key] = _node_uncached(op, av, budget)
    return found


def _node_uncached(op, av, budget: int) -> _Info:
    if op == LITERAL:
        return _exact({_fold_char(av)})
    if op == AT:
        return _exact({_B} if av in (AT_BOUNDARY, AT_UNI_BOUNDARY, AT_LOC_BOUNDARY) else {""})
    if op == ASSERT:  # a look-ahead / look-behind: consumes nothing, but its text is there
        inner = _sequence(av[1], budget)
        return _Info(_NOTHING, _NOTHING, _NOTHING, inner.options)
    if op == ASSERT_NOT:
        return _exact({""})  # consumes nothing, says what is not there
    if op == IN:
        chars = _class_chars(av)
        return _exact(chars) if chars is not None else _UNKNOWN
    if op == SUBPATTERN:
        return _sequence(av[-1], budget)
    if op == ATOMIC_GROUP:
        return _sequence(av, budget)
    if op == BRANCH:
        return _union([_sequence(branch, budget) for branch in av[1]])
    if op in (MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT):
        low, high, item = av
        inner = _sequence(item, budget)
        if inner.exact is not None and high <= 4:
            strings: set[str] = set()
            power: frozenset[str] | None = _NOTHING
            for count in range(high + 1):
                if count >= low:
                    strings |= power
                if count < high:
                    power = _product(power, inner.exact)
                    if power is None:
                        break
            if power is not None and len(strings) <= _LIMIT:
                return _exact(strings)
        if low == 0:
            return _UNKNOWN
        return _Info(None, inner.exact or inner.prefix, inner.exact or inner.suffix, inner.options)
    # ANY, NOT_LITERAL, CATEGORY, GROUPREF, GROUPREF_EXISTS, ...: anything
    return _UNKNOWN


def _union_options(infos: list[_Info]) -> tuple[frozenset[str], ...]:
    """Anchor sets of an alternation: one set of each branch, chosen to share strings."""
    if not all(info.options for info in infos):
        return ()
    results = []
    for seed in infos[0].options:
        chosen = _merge(seed)
        for info in infos[1:]:
            chosen = min((_merge(chosen | option) for option in info.options),
                         key=lambda merged: (_cost(merged), sorted(merged)))
        results.append(chosen)
    return _rank(results)


def _union(infos: list[_Info]) -> _Info:
    if all(info.exact is not None for info in infos):
        strings = frozenset().union(*(info.exact for info in infos))
        if len(strings) <= _LIMIT:
            return _exact(strings)
    prefix = frozenset().union(*(info.exact if info.exact is not None else info.prefix for info in infos))
    suffix = frozenset().union(*(info.exact if info.exact is not None else info.suffix for info in infos))
    if len(prefix) > _LIMIT:
        prefix = _NOTHING
    if len(suffix) > _LIMIT:
        suffix = _NOTHING
    return _Info(None, prefix, suffix, _union_options(infos))


def _sequence(items, budget: int = _SPLIT_BUDGET) -> _Info:
    items = _flatten(items)
    key = ("sequence", tuple((op, id(av)) for op, av in items), budget)
    found = _MEMO.get(key)
    if found is None:
        found = _MEMO[key] = _sequence_uncached(items, budget)
    return found


def _sequence_uncached(items, budget: int) -> _Info:
    """A concatenation; an alternation or optional part inside is split into whole alternatives.

    Splitting lets literals on either side of an alternation join up
    (``\\bp(?:t|rothrombin)\\b``); the anchors of the sequence are the better
    of the split and the plain analysis.
    """
    items = _flatten(items)
    plain = _concatenate([_node(op, av, budget) for op, av in items])
    for index, (op, av) in enumerate(items):
        alternatives = None
        if op == BRANCH:
            if _node(op, av, 1).exact is None:
                alternatives = [_flatten(branch) for branch in av[1]]
        elif _is_optional(op, av) and _sequence(av[2], 1).exact is None:
            alternatives = [_flatten(av[2]), []]
        if alternatives and len(alternatives) <= budget:
            share = budget // len(alternatives)
            split = _union([_sequence(items[:index] + alternative + items[index + 1:], share)
                            for alternative in alternatives])
            return _Info(split.exact, split.prefix, split.suffix, _rank(split.options + plain.options))
    return plain


def _concatenate(infos: list[_Info]) -> _Info:
    run = _NOTHING          # the exact strings the sequence so far ends with
    exact_so_far = True
    prefix = _NOTHING
    candidates: list[frozenset[str] | None] = []
    for info in infos:
        if info.exact is not None:
            candidates.extend(info.options)
            joined = _product(run, info.exact)
            if joined is None:  # too many strings: keep what we have as a candidate
                candidates.append(run)
                if exact_so_far:
                    prefix, exact_so_far = run, False
                run = info.exact
            else:
                run = joined
            continue
        joined = _product(run, info.prefix)
        candidates.append(joined if joined is not None else run)
        candidates.extend(info.options)
        if exact_so_far:
            prefix = joined if joined is not None else run
            exact_so_far = False
        run = info.suffix
    if exact_so_far:
        return _exact(run)
    candidates.append(run)
    return _Info(None, prefix, run, _rank(candidates))


def _to_anchors(strings: frozenset[str] | None) -> frozenset[Anchor] | None:
    if not _usable(strings):
        return None
    anchors: dict[str, Anchor] = {}
    for string in strings:
        anchor = Anchor(string.replace(_B, ""), string.startswith(_B), string.endswith(_B))
        known = anchors.get(anchor.text)
        if known is not None:  # the same literal with other flags: keep only the flags both have
            anchor = Anchor(anchor.text, anchor.word_start and known.word_start, anchor.word_end and known.word_end)
        anchors[anchor.text] = anchor
    return frozenset(anchors.values())


# --------------------------------------------------------------------------------------------
# Case-free patterns: the same matches, on the folded text, without re.IGNORECASE
# --------------------------------------------------------------------------------------------

#: Escapes :func:`case_free` keeps as written: classes, anchors and control characters.
_LETTER_ESCAPES = frozenset("AbBdDsSwWZafnrtv")
_INLINE_FLAGS = re.compile(r"\(\?([aiLmsux]+)([:)])")


@functools.lru_cache(maxsize=4096)
def case_free(pattern: re.Pattern) -> re.Pattern | None:
    """``pattern`` (compiled with ``re.IGNORECASE``) as a case-sensitive pattern for ``fold(text)``.

    ``case_free(p).finditer(fold(text))`` gives the spans of
    ``p.finditer(text)``: the folded text has the same length, and an ASCII
    letter of the pattern matches a character under ``re.IGNORECASE`` exactly
    when it equals the folded character (:func:`fold`). Python's ``re`` runs
    two to three times faster without the flag. The pattern's ASCII letters
    are lower-cased (not those of escapes such as ``\\b`` or ``\\W``) and the
    ``i`` of its inline flags dropped, once Python's own parser has shown
    that nothing else in the pattern depends on the case. None when the pattern
    is not case-insensitive or holds something the rewrite does not cover (a
    non-ASCII character, a numeric escape, a back-reference,
    ``(?-i:...)``, a class range such as ``[0-Z]``): the caller keeps the
    original on the original text.
    """
    if not pattern.flags & re.IGNORECASE or not isinstance(pattern.pattern, str):
        return None
    source = pattern.pattern
    if not source.isascii():
        return None
    out = []
    index = 0
    while index < len(source):
        char = source[index]
        if char == "\\":
            escaped = source[index + 1:index + 2]
            if escaped.isalpha() and escaped not in _LETTER_ESCAPES:
                return None  # \x41, \N{...}, \u..., \g<...>: not rewritten
            if escaped.isdigit():
                return None  # a back-reference or an octal escape
            out.append(source[index:index + 2])
            index += 2
            continue
        if source.startswith("(?P<", index):  # a group name is kept as written
            close = source.find(">", index)
            if source[index + 4:close] not in pattern.groupindex:
                return None  # "(?P<" inside a character class
            out.append(source[index:close + 1])
            index = close + 1
            continue
        if source.startswith("(?P=", index):
            return None  # a back-reference
        out.append(char.lower())
        index += 1
    rewritten = _INLINE_FLAGS.sub(_drop_ignorecase, "".join(out))
    flags = pattern.flags & ~re.IGNORECASE
    try:
        if not _rewritable(sre_parse.parse(source, pattern.flags & ~re.UNICODE).data):
            return None
        compiled = re.compile(rewritten, flags)
    except (re.error, RecursionError):
        return None
    return None if compiled.flags & re.IGNORECASE else compiled


def _runnable(pattern: re.Pattern) -> tuple[re.Pattern, bool]:
    """The form of ``pattern`` to run, and whether it runs on the folded text (its
    :func:`case_free` form, when it has one) or on the text."""
    fast = case_free(pattern)
    return (pattern, False) if fast is None else (fast, True)


def _drop_ignorecase(match: re.Match) -> str:
    letters = match.group(1).replace("i", "")
    if letters:
        return f"(?{letters}{match.group(2)}"
    return "(?:" if match.group(2) == ":" else ""


def _rewritable(items: list) -> bool:
    """Whether lower-casing the letters of a pattern keeps its meaning on folded text.

    Not with a back-reference, a case-sensitive group ``(?-i:...)`` or a
    class range that holds some capitals but not only capitals (``[0-Z]``).
    """
    for op, av in items:
        if op == IN:
            for kind, value in av:
                if kind == RANGE and not (65 <= value[0] and value[1] <= 90) and not (value[1] < 65 or value[0] > 90):
                    return False
        elif op == SUBPATTERN:
            if av[2] & re.IGNORECASE or not _rewritable(av[3].data):
                return False
        elif op == BRANCH:
            if not all(_rewritable(branch.data) for branch in av[1]):
                return False
        elif op in (MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT):
            if not _rewritable(av[2].data):
                return False
        elif op in (ASSERT, ASSERT_NOT):
            if not _rewritable(av[1].data):
                return False
        elif op == ATOMIC_GROUP:
            if not _rewritable(av.data):
                return False
        elif op not in (LITERAL, NOT_LITERAL, AT, ANY, CATEGORY):
            return False  # GROUPREF, GROUPREF_EXISTS, ...
    return True


def regex_anchors(pattern: str, flags: int = re.IGNORECASE) -> frozenset[Anchor] | None:
    """Anchors of a regular expression: every match contains one of them (None: no usable literal)."""
    return _to_anchors(_analyse(pattern, flags).best)


def regex_prefix(pattern: str, flags: int = re.IGNORECASE) -> frozenset[Anchor] | None:
    """Anchors every match *starts* with (at the match's first character), or None."""
    return _to_anchors(_analyse(pattern, flags).prefix)


class Plan(NamedTuple):
    """How to look for one rule.

    ``anchors``: every match contains one of them (the rule can only match
    when one occurs); ``starts``: every match *starts* with one of them, at
    its first character (None: not known), so the regex need only be tried
    where they are (``pattern.match(text, position)``) instead of at every
    character of the text.
    """

    anchors: frozenset[Anchor] | None
    starts: frozenset[Anchor] | None = None

    @property
    def prefix(self) -> bool:
        return bool(self.starts)


def regex_plan(pattern: str, flags: int = re.IGNORECASE) -> Plan:
    """The anchors of a regex and, when usable (not single letters), its start anchors."""
    info = _analyse(pattern, flags)
    prefix = _merge(info.prefix, starts=True) if _usable(info.prefix) else None
    if prefix is not None and _cost(prefix) >= _TOO_COMMON:
        prefix = None
    best = info.best or prefix
    if best is not None and _cost(best) >= _TOO_COMMON:
        best = None  # single letters: they would be everywhere; the regex runs on every text
    return Plan(_to_anchors(best), _to_anchors(prefix))


#: Anchor sets likelier than this to occur (a lone letter) are not worth scanning for.
_TOO_COMMON = 12.0 ** -2
#: Start anchors this much likelier than a key's anchors are looked for only when those are found.
_LAZY_STARTS = 20.0


_TOKENIZER = None


def _phrase_anchor(text: str) -> frozenset[Anchor] | None:
    """A literal phrase, matched token by token on LOWER: its longest token.

    The tokens of the text must equal the phrase's tokens (whatever the white
    space between them), so only a single token is sure to occur as is.
    """
    global _TOKENIZER
    if not text.isascii():
        return None
    if _TOKENIZER is None:
        from .nlp.pipeline import clinical_blank
        _TOKENIZER = clinical_blank().tokenizer
    tokens = [token.lower_ for token in _TOKENIZER(text.lower()) if not token.is_space]
    if not tokens:
        return None
    return frozenset({Anchor(max(tokens, key=len))})


def _token_anchor(token: dict) -> frozenset[Anchor] | None:
    if token.get("OP") not in (None, "+", "1", "{1}"):
        return None  # optional, repeated or negated: need not occur
    for key in ("LOWER", "ORTH", "TEXT"):
        value = token.get(key)
        values = [value] if isinstance(value, str) else (
            value.get("IN") if isinstance(value, dict) and set(value) == {"IN"} else None)
        if values is None:
            continue
        if not values or not all(isinstance(v, str) and v and v.isascii() for v in values):
            return None
        return frozenset(Anchor(v.lower()) for v in values)
    return None


def rule_anchors(rule: Mapping[str, Any]) -> frozenset[Anchor] | None:
    """Anchors of one rule (``pattern`` a regex, a token pattern or absent: the ``literal`` phrase)."""
    pattern = rule.get("pattern")
    if pattern is None:
        return _phrase_anchor(rule["literal"])
    if isinstance(pattern, str):
        return regex_anchors(pattern)
    best = None
    for token in pattern:
        found = _token_anchor(token)
        if found is not None and (best is None or _cost(_as_strings(found)) < _cost(_as_strings(best))):
            best = found
    return best


def _as_strings(anchors: frozenset[Anchor]) -> frozenset[str]:
    return frozenset(f"{_B if a.word_start else ''}{a.text}{_B if a.word_end else ''}" for a in anchors)


# --------------------------------------------------------------------------------------------
# The scan
# --------------------------------------------------------------------------------------------

_GATE, _START = 1, 2


def _starts_are_lazy(plan: Plan) -> bool:
    """Whether a plan's start anchors are so much commoner than its anchors that they are
    looked for only once the anchors are found ("\\bdisc" for "... disc infection")."""
    return bool(plan.starts and plan.anchors and plan.starts != plan.anchors
                and _cost(_as_strings(plan.starts)) > _LAZY_STARTS * _cost(_as_strings(plan.anchors)))


class AnchorIndex:
    """An Aho-Corasick automaton of the anchors of many keys (rules).

    :meth:`scan` returns the keys that can match (one of their ``anchors``
    occurs, or they have none) with, for a key with start anchors, the
    sorted positions where a match may start (else None: anywhere).
    """

    def __init__(self, plans: Mapping[Hashable, Plan]):
        self.always = [key for key, plan in plans.items() if not plan.anchors]
        self.prefix = {key for key, plan in plans.items() if plan.starts}
        # lazy start anchors (_starts_are_lazy) get an automaton of their own
        self._lazy = {key: AnchorIndex({key: Plan(plan.starts, plan.starts)}) for key, plan in plans.items()
                      if _starts_are_lazy(plan)}
        roles: dict[str, dict[tuple[Hashable, bool, bool], int]] = {}
        for key, plan in plans.items():
            for role, anchors in ((_GATE, plan.anchors), (_START, None if key in self._lazy else plan.starts)):
                for anchor in anchors or ():
                    entry = (key, anchor.word_start, anchor.word_end)
                    entries = roles.setdefault(anchor.text, {})
                    entries[entry] = entries.get(entry, 0) | role
        self._automaton = None
        if roles:
            automaton = ahocorasick.Automaton()
            for text, entries in roles.items():
                automaton.add_word(text, (len(text), _is_word(text[0]), _is_word(text[-1]),
                                          tuple((key, ws, we, role) for (key, ws, we), role in entries.items())))
            automaton.make_automaton()
            self._automaton = automaton

    def starts_of(self, key: Hashable, folded: str) -> list[int]:
        """Sorted start positions of a key whose start anchors are looked for lazily."""
        return sorted({start for _, start, _ in self._lazy[key].iter_hits(folded)})

    def is_lazy(self, key: Hashable) -> bool:
        return key in self._lazy

    def iter_hits(self, folded: str):
        """``(key, start, role)`` for every anchor occurrence whose boundary flags hold."""
        if self._automaton is None:
            return
        size = len(folded)
        for end, (length, first_word, last_word, entries) in self._automaton.iter(folded):
            start = end - length + 1
            before = after = None
            for key, word_start, word_end, role in entries:
                if word_start:
                    if before is None:
                        char = folded[start - 1] if start else " "
                        before = char.isalnum() or char == "_"
                    if before == first_word:
                        continue
                if word_end:
                    if after is None:
                        char = folded[end + 1] if end + 1 < size else " "
                        after = char.isalnum() or char == "_"
                    if after == last_word:
                        continue
                yield key, start, role

    def scan(self, folded: str) -> dict[Hashable, list[int] | None]:
        gated: set[Hashable] = set(self.always)
        starts: dict[Hashable, list[int]] = {}
        for key, start, role in self.iter_hits(folded):
            if role & _GATE:
                gated.add(key)
            if role & _START:
                positions = starts.get(key)
                if positions is None:
                    starts[key] = [start]
                else:
                    positions.append(start)
        found: dict[Hashable, list[int] | None] = {}
        for key in gated:
            if key in self._lazy:
                found[key] = self.starts_of(key, folded)
            elif key in self.prefix:
                positions = starts.get(key, [])
                found[key] = sorted(set(positions)) if len(positions) > 1 else positions
            else:
                found[key] = None
        return found


def anchored_finditer(pattern: re.Pattern, text: str, positions: list[int] | None):
    """``pattern.finditer(text)`` when every match starts at one of ``positions`` (sorted).

    ``pattern.match(text, p)`` sees the text before ``p`` (``\\b``,
    look-behinds) as ``finditer`` does; trying the positions in order after
    the previous match's end finds the same leftmost matches. ``None``: no
    positions known, plain ``finditer``.
    """
    if positions is None:
        yield from pattern.finditer(text)
        return
    resume = 0
    for position in positions:
        if position < resume:
            continue
        found = pattern.match(text, position)
        if found is not None:
            yield found
            resume = found.end() if found.end() > found.start() else found.end() + 1


@dataclass
class Prefilter:
    """``prefilter(text)`` is True when the note may hold a mention.

    ``rules`` maps a key to (plan, verifying regex or None); a rule without
    a verifying regex (a phrase or token pattern) passes on its anchors
    alone; ``keep_all`` passes every note (a rule had neither).
    """

    rules: dict[Hashable, tuple[Plan, re.Pattern | None]] = field(default_factory=dict)
    keep_all: bool = False

    def __post_init__(self):
        self._index = AnchorIndex({key: plan for key, (plan, _) in self.rules.items()})
        self._verify: dict[Hashable, tuple[re.Pattern | None, bool]] = {
            key: (None, False) if pattern is None else _runnable(pattern) for key, (_, pattern) in self.rules.items()}

    @property
    def anchors(self) -> frozenset[Anchor]:
        return frozenset(a for plan, _ in self.rules.values() for a in plan.anchors or ())

    def candidates(self, text: str) -> list[Hashable]:
        """The rules whose anchors occur in ``text`` (not verified)."""
        return list(self._index.scan(fold(text)))

    def matching(self, text: str) -> Hashable | None:
        """A rule that matches ``text`` (None: no rule can).

        A rule with start anchors is tried at each of them as the scan finds
        them once one of its anchors has been seen (a relevant note usually
        stops at its first hit); the others are searched once the scan is
        over, each at most once.
        """
        verify = self._verify
        index = self._index
        prefix = index.prefix
        gated: set[Hashable] = set()
        waiting: dict[Hashable, list[int]] = {}
        contains: dict[Hashable, None] = dict.fromkeys(self._index.always)
        folded = fold(text)
        for key, start, role in index.iter_hits(folded):
            pattern, on_folded = verify[key]
            if pattern is None:
                return key
            subject = folded if on_folded else text
            if role & _GATE and key not in gated:
                gated.add(key)
                if key in prefix and not index.is_lazy(key):
                    for position in waiting.pop(key, ()):
                        if pattern.match(subject, position) is not None:
                            return key
                else:
                    contains[key] = None  # searched (or its start anchors looked for) after the scan
            if role & _START:
                if key in gated:
                    if pattern.match(subject, start) is not None:
                        return key
                else:
                    waiting.setdefault(key, []).append(start)
        for key in contains:
            pattern, on_folded = verify[key]
            if pattern is None:
                return key
            subject = folded if on_folded else text
            if key in prefix:  # lazily found start anchors
                if any(pattern.match(subject, position) is not None for position in index.starts_of(key, folded)):
                    return key
            elif pattern.search(subject) is not None:
                return key
        return None

    def __call__(self, text: str) -> bool:
        if self.keep_all:
            return True
        if not text:
            return False
        return self.matching(text) is not None


LAB_PATTERNS = {"lab:PT/PTT/INR": PT_PTT_INR, "lab:PT/INR": PT_INR, "lab:INR": INR, "lab:PT": PT,
                "lab:platelets": PLATELETS}


def compile_prefilter(rules: RuleSet, concepts: Iterable[str] | None = None) -> Prefilter:
    """The pre-filter for a rule set: target rules (not IGNORE) and the lab value patterns.

    With ``concepts``, only the target rules of those categories (and no lab
    pattern, unless ``COAGULOPATHY`` is one of them): the filter then passes
    exactly the notes that could hold a mention of one of those concepts.
    """
    wanted = None if concepts is None else frozenset(concepts)
    compiled: dict[Hashable, tuple[Plan, re.Pattern | None]] = {}
    for index, rule in enumerate(rules.target):
        if rule.get("category") == "IGNORE":
            continue  # an IGNORE match never becomes a mention
        if wanted is not None and rule.get("category") not in wanted:
            continue
        pattern = rule.get("pattern")
        if isinstance(pattern, str):
            compiled[f"target:{index}"] = (regex_plan(pattern), re.compile(pattern, re.IGNORECASE))
            continue
        anchors = rule_anchors(rule)
        if not anchors:
            return Prefilter({}, keep_all=True)
        compiled[f"target:{index}"] = (Plan(anchors), None)
    if wanted is None or "COAGULOPATHY" in wanted:  # lab values are COAGULOPATHY mentions
        for key, pattern in LAB_PATTERNS.items():
            compiled[key] = (regex_plan(pattern.pattern, pattern.flags), pattern)
    return Prefilter(compiled)


# --------------------------------------------------------------------------------------------
# Inside the pipeline: run only the regexes that can match, only where they can
# --------------------------------------------------------------------------------------------

class RuleGate:
    """Which of a matcher's regex rules can match a text, and where, from their anchors.

    The start anchors that :class:`AnchorIndex` looks for lazily (much
    commoner than the rule's anchors) are looked for here in one scan of the
    text for all such rules that passed the gate, rather than one scan per
    rule: on radiology reports a dozen of them pass on a typical report. The
    positions are the same (each rule's hits do not depend on the other
    rules in the automaton).
    """

    def __init__(self, patterns: Mapping[Hashable, str]):
        plans = {key: regex_plan(pattern) for key, pattern in patterns.items()}
        lazy = [key for key, plan in plans.items() if _starts_are_lazy(plan)]
        # the gate without the lazy start anchors; those in an index of their own
        self._index = AnchorIndex({key: Plan(plan.anchors) if key in lazy else plan for key, plan in plans.items()})
        self._lazy = frozenset(lazy)
        self._lazy_starts = AnchorIndex({key: Plan(plans[key].starts, plans[key].starts) for key in lazy})
        self.prefix = self._index.prefix | self._lazy
        #: keys without anchors: they pass every text
        self.always = frozenset(self._index.always)
        self._last_text: str | None = None
        self._last_folded = ""
        self._last: dict[Hashable, list[int] | None] = {}

    def scan(self, text: str) -> dict[Hashable, list[int] | None]:
        """Key -> anchor positions (None: anywhere) of the keys that can match ``text``.

        The last answer is remembered (the Extractor and the matcher ask about the same text).
        """
        if text is not self._last_text:
            folded = fold(text)
            found = self._index.scan(folded)
            if not self._lazy.isdisjoint(found):
                starts = self._lazy_starts.scan(folded)
                for key in self._lazy.intersection(found):
                    found[key] = starts.get(key, [])
            self._last_folded = folded
            self._last = found
            self._last_text = text
        return self._last

    def folded(self, text: str) -> str:
        """``fold(text)``, as the last :meth:`scan` made it."""
        self.scan(text)
        return self._last_folded

    def allowed(self, text: str) -> set[Hashable]:
        return set(self.scan(text))


class FastRegexMatcher:
    """A drop-in for medspaCy's ``RegexMatcher.__call__`` with identical output.

    medspaCy's matcher rebuilds ``doc.text_with_ws`` (a Python loop over the
    tokens) for every pattern; this one takes the text once and, with a
    :class:`RuleGate`, skips the patterns whose anchors are not in the text
    (they cannot match). Matches, their order and the token resolution are
    those of ``medspacy.common.regex_matcher.RegexMatcher``.

    A pattern that the gate lets through everywhere (its anchors too common
    for the scan, e.g. ``(?<=\\w)\\?``) still needs one of its literals
    (:func:`_required_strings`): when none is in the text, the pattern is
    skipped without running over the text. A pattern runs in its
    :func:`case_free` form on the folded text when it has one; patterns that
    only match at a line start (the section headings) are tried only at the
    lines where their union matches. A pattern left to search the whole text
    whose matches all start with a literal too common for the anchor scan
    (``(?<=\\w)\\?``: every "?") is tried only where the literal occurs
    (:func:`_start_literals`), when it occurs rarely enough: Python's ``re``
    cannot skip ahead to a literal behind a look-behind or a ``\\b``.
    """

    def __init__(self, inner, gate: RuleGate | None = None):
        from medspacy.common.util import get_token_for_char

        from .nlp.sentences import doc_text
        self._get_token_for_char = get_token_for_char
        self._doc_text = doc_text
        self.inner = inner
        self.gate = gate
        # patterns that can only match at the start of a line (``(?m)^...``) or of the text
        self._at_line_start = {id(p) for ps in inner._patterns.values() for p in ps if _anchored(p) == "line"}
        self._at_text_start = {id(p) for ps in inner._patterns.values() for p in ps if _anchored(p) == "text"}
        self._required = {id(p): _required_strings(p) for ps in inner._patterns.values() for p in ps}
        self._starts = {id(p): _start_literals(p) for ps in inner._patterns.values() for p in ps}
        self._runs = {id(p): _runnable(p) for ps in inner._patterns.values() for p in ps}
        # one pattern for all the line-start patterns (all run on the folded text, or no union)
        line_runs = [self._runs[id(p)] for ps in inner._patterns.values() for p in ps if id(p) in self._at_line_start]
        self._line_union = _union_pattern([compiled if on_folded else None for compiled, on_folded in line_runs])
        self._lines_of: str | None = None
        self._line_starts: list[int] = []

    def _line_starts_to_try(self, text: str, folded: str | None) -> list[int]:
        """The line starts where a line-start pattern can match (remembered for the last text):
        with the union, only where it matches (an alternation fails only where every branch does)."""
        if text is not self._lines_of:
            starts = [0] + [m.end() for m in _NEWLINE.finditer(text)]
            if self._line_union is not None:
                union = self._line_union
                starts = [start for start in starts if union.match(folded, start) is not None]
            self._line_starts, self._lines_of = starts, text
        return self._line_starts

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, doc) -> list[tuple[int, int, int]]:
        inner = self.inner
        text = self._doc_text(doc)
        found = self.gate.scan(text) if self.gate is not None else None
        prefix = self.gate.prefix if self.gate is not None else ()
        get_token = self._get_token_for_char
        folded: str | None = None
        matches: list[tuple[int, int, int]] = []
        for match_id, patterns in inner._patterns.items():
            positions = None
            if found is not None:
                if match_id not in found:
                    continue
                if match_id in prefix and len(patterns) == 1:
                    positions = found[match_id]
            unanchored = self.gate is None or match_id in self.gate.always
            on_match = inner._callbacks[match_id]
            for pattern in patterns:
                required = self._required[id(pattern)] if unanchored else None
                compiled, on_folded = self._runs[id(pattern)]
                starts = self._starts[id(pattern)]
                if folded is None and (required is not None or on_folded or starts is not None):
                    folded = fold(text) if self.gate is None else self.gate.folded(text)
                if required is not None and not any(string in folded for string in required):
                    continue  # none of its literals: no match
                if positions is None and id(pattern) in self._at_line_start:
                    where = self._line_starts_to_try(text, folded)
                elif positions is None and id(pattern) in self._at_text_start:
                    where = [0]
                elif positions is None and starts is not None:
                    where = _occurrences(folded, starts, limit=32 + len(text) // 64)
                else:
                    where = positions
                for re_match in anchored_finditer(compiled, folded if on_folded else text, where):  # same offsets
                    span = doc.char_span(re_match.start(), re_match.end())
                    if span is None:
                        start = get_token(doc, re_match.start(), resolve=inner.resolve_start)
                        end = get_token(doc, re_match.end(), resolve=inner.resolve_end)
                        span = doc[start.i: len(doc) if end is None else end.i]
                    if len(span):
                        matches.append((match_id, span.start, span.end))
                    if on_match is not None:
                        on_match(inner, doc, len(matches) - 1, matches)
        return matches


_NEWLINE = re.compile("\n")
_GLOBAL_FLAGS = re.compile(r"\A\(\?[aLmsux]+\)")


def _union_pattern(patterns: list[re.Pattern | None]) -> re.Pattern | None:
    """``(?:p1)|(?:p2)|...`` of case-free patterns with the same flags (None: not possible)."""
    if len(patterns) < 2 or any(pattern is None for pattern in patterns) \
            or len({pattern.flags for pattern in patterns}) != 1:
        return None
    try:
        return re.compile("|".join(f"(?:{_GLOBAL_FLAGS.sub('', pattern.pattern)})" for pattern in patterns),
                          patterns[0].flags)
    except re.error:  # e.g. two patterns with a group of the same name
        return None


@functools.lru_cache(maxsize=4096)
def _literals(pattern: re.Pattern) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """Folded literals one of which every match of ``pattern`` contains, and one of which
    every match starts with (None: not known), from one analysis of the pattern.

    The anchors and start anchors of :func:`regex_plan`, also the single
    characters it finds too common to scan for (a substring test costs next
    to nothing). Only for case-insensitive patterns: the literals are looked
    for in the folded text.
    """
    if not pattern.flags & re.IGNORECASE:
        return None, None
    try:
        info = _analyse(pattern.pattern, pattern.flags)
    except (re.error, RecursionError):  # pragma: no cover - compiled already
        return None, None
    anchors = _to_anchors(info.best)
    required = None if anchors is None else tuple(sorted(anchor.text for anchor in anchors))
    starts = tuple(sorted({string.replace(_B, "") for string in info.prefix})) if _usable(info.prefix) else None
    return required, starts


def _required_strings(pattern: re.Pattern) -> tuple[str, ...] | None:
    """Folded literals one of which every match of ``pattern`` contains (:func:`_literals`)."""
    return _literals(pattern)[0]


def _start_literals(pattern: re.Pattern) -> tuple[str, ...] | None:
    """Folded literals one of which every match of ``pattern`` starts with (:func:`_literals`)."""
    return _literals(pattern)[1]


def _occurrences(folded: str, literals: tuple[str, ...], *, limit: int) -> list[int] | None:
    """Sorted positions where one of ``literals`` occurs (None: more than ``limit``; searching
    the whole text is then cheaper than trying each position)."""
    positions: list[int] = []
    for literal in literals:
        index = folded.find(literal)
        while index >= 0:
            if len(positions) == limit:
                return None
            positions.append(index)
            index = folded.find(literal, index + 1)
    return sorted(set(positions)) if len(literals) > 1 else positions


@functools.lru_cache(maxsize=4096)
def _anchored(pattern: re.Pattern) -> str | None:
    """"line" if every match starts at a line start (``(?m)^`` first), "text" if at 0 (``\\A``)."""
    try:
        parsed = sre_parse.parse(pattern.pattern, pattern.flags)
    except re.error:  # pragma: no cover - compiled already
        return None
    items = _flatten(list(parsed))
    if not items or items[0][0] != AT:
        return None
    if items[0][1] == AT_BEGINNING_STRING or (items[0][1] == AT_BEGINNING and not pattern.flags & re.MULTILINE):
        return "text"
    if items[0][1] == AT_BEGINNING:
        return "line"
    return None


def speed_up_matcher(component, *, gated: bool, extra: Mapping[Hashable, str] | None = None
                     ) -> RuleGate | None:
    """Swap the regex matcher inside a medspaCy component (TargetMatcher, Sectionizer, ConText).

    With ``gated``, the matcher runs only the rules whose anchors occur in the
    text; the returned gate also answers for the ``extra`` keys (patterns).
    """
    matcher = _medspacy_matcher(component)
    attribute = "_MedspacyMatcher__regex_matcher"
    regex_matcher = getattr(matcher, attribute)
    if isinstance(regex_matcher, FastRegexMatcher):
        return regex_matcher.gate
    gate = None
    if gated:
        vocab = regex_matcher.vocab
        patterns: dict[Hashable, str] = {
            vocab.strings[rule_id]: rule.pattern for rule_id, rule in matcher.rule_map.items()
            if isinstance(rule.pattern, str)}
        patterns.update(extra or {})
        gate = RuleGate(patterns)
    setattr(matcher, attribute, FastRegexMatcher(regex_matcher, gate))
    return gate


def _medspacy_matcher(component):
    for name in ("_TargetMatcher__matcher", "_Sectionizer__matcher", "_ConText__matcher"):
        if hasattr(component, name):
            return getattr(component, name)
    raise TypeError(f"not a medspaCy component with a matcher: {type(component).__name__}")

