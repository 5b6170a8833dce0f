"""Run the ``examples`` and ``counter_examples`` of target rules.

An example must yield at least one mention of the rule's category; a
counter-example must yield none. ``IGNORE`` rules are checked through the
counter-examples of the rules they protect ("Epidural steroid injection" is
a counter-example of the epidural rule). ``vertebro rules check`` and the
test suite both call :func:`check_examples`.
"""

from __future__ import annotations

from pathlib import Path

from .pipeline import Extractor
from .rules import load_rules


def example_cases(patterns: list[str | Path] = ()) -> list[tuple[str, str, str, bool]]:
    """``(rule literal, category, text, must_match)`` for every example of every target rule."""
    cases = []
    for rule in load_rules(list(patterns)).target:
        if rule["category"] == "IGNORE":
            continue
        for text in rule.get("examples", []):
            cases.append((rule["literal"], rule["category"], text, True))
        for text in rule.get("counter_examples", []):
            cases.append((rule["literal"], rule["category"], text, False))
    return cases


def check_case(extractor: Extractor, category: str, text: str, must_match: bool) -> bool:
    found = any(mention["concept"] == category for mention in extractor.mentions(text))
    return found == must_match


def check_examples(patterns: list[str | Path] = ()) -> list[str]:
    """One problem line per failing example (empty when all pass)."""
    extractor = Extractor(patterns=list(patterns))
    problems = []
    for literal, category, text, must_match in example_cases(patterns):
        if not check_case(extractor, category, text, must_match):
            kind = "example" if must_match else "counter-example"
            problems.append(f"R020 rule {literal!r} ({category}): {kind} {text!r} "
                            f"{'gives no' if must_match else 'gives a'} {category} mention")
    return problems
