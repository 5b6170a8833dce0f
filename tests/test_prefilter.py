"""The keyword pre-filter: anchors derived from the rules, lossless on corpora and generated text.

The property tests check the one thing the pre-filter promises: a note it
drops has no mention under the full pipeline (and no target or lab regex
match at all). The unit tests check the anchor derivation on alternations,
optional groups, classes, repeats and word boundaries, and that every match
of a pattern contains one of its anchors.
"""

from __future__ import annotations

import json
import re
import string
import sys

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import pipeline.prefilter as prefilter
from pipeline.nlp.labs import INR, PLATELETS, PT, PT_INR, PT_PTT_INR
from pipeline.nlp.rules import load_rules
from pipeline.prefilter import (
    Anchor,
    AnchorIndex,
    Plan,
    anchored_finditer,
    case_free,
    compile_prefilter,
    fold,
    regex_anchors,
    regex_plan,
    regex_prefix,
    rule_anchors,
)

from .conftest import DEMO, REPO

DEV = REPO / "corpora" / "dev" / "notes.jsonl"
RULES = load_rules()
PREFILTER = compile_prefilter(RULES)
TARGET_PATTERNS = [rule["pattern"] for rule in RULES.target
                   if rule.get("category") != "IGNORE" and isinstance(rule.get("pattern"), str)]
ALL_PATTERNS = [rule["pattern"] for rule in RULES.target if isinstance(rule.get("pattern"), str)] + \
    [rule["pattern"] for rule in RULES.context if isinstance(rule.get("pattern"), str)]
LABS = [PT_PTT_INR, PT_INR, INR, PT, PLATELETS]


def corpus_notes() -> list[tuple[str, str]]:
    """(text, title) of every note of the repository's corpora."""
    notes = []
    demo = pd.read_csv(DEMO, dtype=str, keep_default_na=False)
    notes += list(zip(demo.note_text, demo.note_title))
    if DEV.exists():
        for line in DEV.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            notes.append((row.get("note_text") or "", row.get("note_title") or ""))
    return notes


def texts(anchors) -> set[str]:
    return {anchor.text for anchor in anchors}


def occurs(anchor: Anchor, folded: str, start: int, end: int) -> bool:
    """``anchor`` occurs inside folded[start:end] with its word-boundary flags holding."""
    def word(i):
        return 0 <= i < len(folded) and (folded[i].isalnum() or folded[i] == "_")
    i = folded.find(anchor.text, start)
    while i >= 0 and i + len(anchor.text) <= end:
        j = i + len(anchor.text)
        if (not anchor.word_start or word(i - 1) != word(i)) and (not anchor.word_end or word(j - 1) != word(j)):
            return True
        i = folded.find(anchor.text, i + 1)
    return False


def assert_covered(pattern: re.Pattern, text: str) -> None:
    """Every match of ``pattern`` in ``text`` contains one of its anchors (starts with one, for a prefix plan)."""
    plan = regex_plan(pattern.pattern, pattern.flags)
    anchors = regex_anchors(pattern.pattern, pattern.flags)
    folded = fold(text)
    for match in pattern.finditer(text):
        if anchors:
            assert any(occurs(a, folded, match.start(), match.end()) for a in anchors), (pattern.pattern, match)
        if plan.starts:
            assert any(occurs(a, folded, match.start(), match.start() + len(a.text)) for a in plan.starts), \
                (pattern.pattern, match)


# ------------------------------------------------------------------------------------------
# Anchor derivation
# ------------------------------------------------------------------------------------------

def test_literal_with_word_boundaries():
    assert regex_anchors(r"\bfever\b") == {Anchor("fever", True, True)}
    assert regex_anchors(r"fever") == {Anchor("fever")}


def test_alternation_is_the_union_and_factored_prefixes_join_up():
    # sre factors the common "f" out of the branches: the anchors must still be whole words
    assert texts(regex_anchors(r"\b(?:fx|fractures?|fractured)\b")) == {"fx", "fracture", "fractures", "fractured"}
    # "\bvWD\b|\bvon ..." shares a "v": "wd" alone would match "awd", "kwd", ...
    assert "wd" not in texts(regex_anchors(r"\bvon\s+willebrand(?:'?s)?(?:\s+disease)?\b|\bvWD\b"))
    assert "vwd" in texts(regex_anchors(r"\bvon\s+willebrand(?:'?s)?(?:\s+disease)?\b|\bvWD\b"))


def test_short_word_bounded_token_followed_by_a_number():
    # "\bPT\b" before a value: the word-bounded token, not "pt" anywhere ("symptom", "accepted")
    anchors = regex_anchors(PT.pattern, PT.flags)
    assert Anchor("pt", True, True) in anchors
    assert Anchor("pt", False, False) not in anchors
    assert regex_anchors(r"\bINR\b\s*:?\s*\d+(?:\.\d+)?") == {Anchor("inr", True, True)}
    assert texts(regex_anchors(r"\bmetastas[ie]s\b|\bmetastatic\b|\bmets\b")) == \
        {"metastases", "metastasis", "metastatic", "mets"}  # not "met"


def test_optional_groups_contribute_nothing_required():
    pattern = re.compile(r"\b(?:multiple\s+)?myeloma\b", re.IGNORECASE)
    assert regex_anchors(pattern.pattern) != {Anchor("multiple", True)}  # "myeloma" alone matches too
    assert_covered(pattern, "Multiple myeloma; myeloma; multiple  myeloma")
    # the optional part cannot be the only anchor
    assert regex_anchors(r"(?:acute\s+)?\bfracture") != {Anchor("acute")}
    assert "fracture" in texts(regex_anchors(r"(?:acute\s+)?\bfracture"))


def test_optional_letter_multiplies_out():
    assert texts(regex_anchors(r"\bo?edema\b")) == {"edema", "oedema"}
    assert texts(regex_anchors(r"\bha?emophilia")) == {"hemophilia", "haemophilia"}


def test_character_classes():
    assert texts(regex_anchors(r"\b[Tt][- ]?score")) == {"tscore", "t-score", "t score"}
    assert texts(regex_anchors(r"spondylodis[ck]itis")) == {"spondylodiscitis", "spondylodiskitis"}
    # a wide or negated class is not a literal
    assert regex_anchors(r"[a-z]+") is None
    assert regex_anchors(r"[^x]y") == {Anchor("y")}


def test_patterns_without_a_literal_have_no_anchor():
    assert regex_anchors(r".*") is None
    assert regex_anchors(r"\d+") is None
    assert regex_anchors(r"(?:a|\w+)b?") is None
    assert regex_anchors(r"\d+\s*mg\b") == {Anchor("mg", False, True)}


def test_lookarounds():
    # a look-behind's text is there; a negative look-around says nothing
    assert regex_anchors(r"(?<=treated\s)(?:19|20)\d\d\b") == {Anchor("treated")}
    assert texts(regex_anchors(r"\b(?<!kyphotic )deformity\b")) == {"deformity"}


def test_prefix_plans():
    assert regex_plan(r"\bfever\b").prefix
    assert regex_prefix(r"\b(?:anterior\s+)?wedging") == {Anchor("anterior", True), Anchor("wedging", True)}
    assert not regex_plan(r"\d+\s*/\s*10\s+pain").prefix


def test_start_plans_keep_an_optional_prefix():
    # "post-kyphoplasty cement" starts at "post-", not where "kyphoplasty" does (found by hypothesis)
    pattern = re.compile(r"\b(?:post[- ])?kyphoplasty\s+cement\b", re.IGNORECASE)
    starts = regex_plan(pattern.pattern).starts
    assert {Anchor("post-kyphoplasty", True), Anchor("post kyphoplasty", True), Anchor("kyphoplasty", True)} <= starts
    assert_covered(pattern, "post-kyphoplasty\x85cement; Post kyphoplasty cement; kyphoplasty cement")
    # the anchors, which need only occur inside a match, still drop the longer strings
    assert texts(regex_anchors(pattern.pattern)) == {"kyphoplasty"}


def test_rule_anchor_kinds():
    assert rule_anchors({"literal": "Compression fracture"}) == {Anchor("compression")}
    assert rule_anchors({"literal": "x", "pattern": [{"LOWER": "burst"}, {"LOWER": "fracture"}]}) in (
        {Anchor("burst")}, {Anchor("fracture")})
    assert rule_anchors({"literal": "x", "pattern": [{"LOWER": "a", "OP": "?"}, {"IS_DIGIT": True}]}) is None


def test_every_match_contains_an_anchor_on_rule_examples():
    examples = [text for rule in RULES.target for text in rule.get("examples", [])]
    for pattern in ALL_PATTERNS:
        compiled = re.compile(pattern, re.IGNORECASE)
        for text in examples:
            assert_covered(compiled, text)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_generated_match_contains_an_anchor(data):
    pattern = data.draw(st.sampled_from(TARGET_PATTERNS + [lab.pattern for lab in LABS]))
    compiled = re.compile(pattern, re.IGNORECASE)
    try:
        text = data.draw(st.from_regex(compiled))
    except (InvalidArgument, NotImplementedError, re.error):  # a construct hypothesis cannot generate from
        assume(False)
    assert_covered(compiled, text)


# ------------------------------------------------------------------------------------------
# Case folding
# ------------------------------------------------------------------------------------------

def test_fold_agrees_with_ignorecase_for_every_code_point():
    everything = "".join(chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF)
    folded = fold(everything)
    assert len(folded) == len(everything)
    for char in string.ascii_letters + string.digits + string.punctuation + " ":
        by_re = {m.start() for m in re.finditer(re.escape(char), everything, re.IGNORECASE)}
        by_fold = {i for i, c in enumerate(folded) if c == char.lower()} if char.isalpha() else \
            {i for i, c in enumerate(folded) if c == char}
        assert by_re == by_fold, char


def test_fold_keeps_word_characters():
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        if char.isascii():
            continue
        f = fold(char)
        assert (char.isalnum() or char == "_") == (f.isalnum() or f == "_"), hex(code)


# ------------------------------------------------------------------------------------------
# Case-free patterns on the folded text
# ------------------------------------------------------------------------------------------

SHIPPED_REGEXES = [re.compile(pattern, re.IGNORECASE) for pattern in ALL_PATTERNS] + \
    [re.compile(rule["pattern"], re.IGNORECASE) for rule in RULES.sections if isinstance(rule.get("pattern"), str)] + \
    LABS
#: case variants re.IGNORECASE treats as ASCII letters, and other letters whose case changes
ODD_CASES = ["İNR 2.1", "ıNR", "ſepsis", "\u212aypho", "ÉPIDURAL abscess", "ΣΊΣΥΦΟΣ fracture", "Straße"]


def spans(pattern: re.Pattern, text: str) -> list[tuple[int, int]]:
    return [match.span() for match in pattern.finditer(text)]


def test_case_free_rewrites_letters_and_keeps_escapes():
    assert case_free(re.compile(r"\bINR\s*[A-Z]\W(?i:X)\t", re.IGNORECASE)).pattern == r"\binr\s*[a-z]\W(?:x)\t"
    section = case_free(re.compile(r"(?im)^[ \t]*IMPRESSION:", re.IGNORECASE))
    assert section.pattern == r"(?m)^[ \t]*impression:" and not section.flags & re.IGNORECASE
    assert case_free(re.compile(r"(?P<Value>\d+)\s*MG", re.IGNORECASE)).pattern == r"(?P<Value>\d+)\s*mg"


@pytest.mark.parametrize("pattern", [
    r"\x41", r"\u0041", r"\N{LATIN CAPITAL LETTER A}", r"(a)\1", r"(?P<x>a)(?P=x)", r"[0-Z]", r"(?-i:A)b",
    r"(a)?(?(1)b|c)", "µL", r"[(?P<]x",
])
def test_case_free_refuses_what_it_cannot_rewrite(pattern):
    assert case_free(re.compile(pattern, re.IGNORECASE)) is None


def test_case_free_leaves_case_sensitive_patterns_alone():
    assert case_free(re.compile(r"\bINR\b")) is None


def test_case_free_covers_the_shipped_regexes():
    refused = [pattern.pattern for pattern in SHIPPED_REGEXES if case_free(pattern) is None]
    # the platelets' units hold non-ASCII characters ("×10⁹/L", "µL"); "CAP" (pneumonia),
    # "ITP" and "HIT" are matched in capitals only, which a lower-cased text cannot tell from
    # "knee cap" or "hit by a car"
    capitals = [pattern.pattern for pattern in SHIPPED_REGEXES
                if "(?-i:CAP" in pattern.pattern or "(?-i:ITP" in pattern.pattern]
    assert len(capitals) == 2 and sorted(refused) == sorted([*capitals, PLATELETS.pattern])


def test_case_free_finds_the_same_spans_on_the_corpora():
    notes = [text for text, _ in corpus_notes()] + ODD_CASES
    for pattern in SHIPPED_REGEXES:
        fast = case_free(pattern)
        if fast is None:
            continue
        for text in notes:
            assert spans(fast, fold(text)) == spans(pattern, text), (pattern.pattern, text[:0])


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_case_free_finds_the_same_spans_on_generated_text(data):
    pattern = data.draw(st.sampled_from([p for p in SHIPPED_REGEXES if case_free(p) is not None]))
    text = data.draw(st.lists(st.one_of(PIECES, st.sampled_from(ODD_CASES), st.text(max_size=8)), max_size=20)
                     .map("".join))
    assert spans(case_free(pattern), fold(text)) == spans(pattern, text)


# ------------------------------------------------------------------------------------------
# The scan
# ------------------------------------------------------------------------------------------

def test_word_boundary_flags_are_checked():
    pt = frozenset({Anchor("pt", True, True)})
    index = AnchorIndex({"pt": Plan(pt, starts=pt), "inr": Plan(frozenset({Anchor("inr", True, True)}))})
    assert index.scan(fold("PT 14.2 s")) == {"pt": [0]}
    assert index.scan(fold("symptoms accepted, pts")) == {}
    assert index.scan(fold("(PT) pt")) == {"pt": [1, 5]}
    assert index.scan(fold("INR 2, INR 3")) == {"inr": None}  # no start anchors: anywhere


def test_anchored_finditer_is_finditer():
    pattern = re.compile(r"\bfever(?:s)?\b", re.IGNORECASE)
    text = "Fever, fevers; no feverish. FEVER"
    positions = sorted(m.start() for m in re.finditer("fever", text.lower()))
    assert [m.span() for m in anchored_finditer(pattern, text, positions)] == \
        [m.span() for m in pattern.finditer(text)]


def test_start_literals_and_their_occurrences():
    from pipeline.prefilter import _occurrences, _start_literals

    assert _start_literals(re.compile(r"(?<=\w)\?", re.IGNORECASE)) == ("?",)
    assert _start_literals(re.compile(r"\b(?:Acute|new)\s+fx", re.IGNORECASE)) == ("acute", "new")
    assert _start_literals(re.compile(r"(?<=\w)\s*\(", re.IGNORECASE)) is None  # may start at a space
    assert _start_literals(re.compile(r"(?<=\w)\?")) is None  # case-sensitive: not looked for in folded text
    assert _occurrences("a? b? new acute new", ("acute", "new"), limit=10) == [6, 10, 16]
    assert _occurrences("a? b? c?", ("?",), limit=2) is None  # too many: the whole text is searched


@pytest.mark.parametrize("count", [0, 1, 3, 200])
def test_matcher_tries_start_literals_only_where_they_occur(count):
    """A look-behind before a common literal: the same matches from its occurrences as from a
    search of the whole text, whether the literal is rare or too common to try one by one."""
    from medspacy.common.regex_matcher import RegexMatcher

    from pipeline.nlp.pipeline import clinical_blank
    from pipeline.prefilter import FastRegexMatcher

    nlp = clinical_blank()
    inner = RegexMatcher(nlp.vocab)
    inner.add("QUERY", [r"(?<=\w)\?"])
    inner.add("BARE", [r"(?<!\w)\?\s*\w+"])
    text = " ".join(["Fracture? no", "? wedge", "L1?"] * count + ["end."])
    doc = nlp(text)
    assert FastRegexMatcher(inner)(doc) == inner(doc)
    assert len(inner(doc)) == 3 * count


def any_rule_matches(text: str) -> bool:
    return any(re.search(p, text, re.IGNORECASE) for p in TARGET_PATTERNS) or \
        any(lab.search(text) for lab in LABS)


@pytest.mark.parametrize("text", [
    "Seen in clinic. Feels well. Review in 6 months.",
    "Symptoms settled; accepted for rehab.",          # "pt" inside words is not PT
    "Acute L1 compression fracture.", "INR 2.4", "Pt on warfarin", "PT 14.2 s", "Plt42",
    "Patient is afebrile.", "No pedal oedema.", "", "İNR 3.1", "ſepsis",
])
def test_prefilter_passes_exactly_the_notes_a_rule_matches(text):
    assert PREFILTER(text) == any_rule_matches(text)


def test_a_rule_match_always_passes():
    assert PREFILTER("Acute L1 compression fracture.")
    assert PREFILTER("INR 2.4")
    assert not PREFILTER("")


# ------------------------------------------------------------------------------------------
# Lossless: nothing with a mention is dropped
# ------------------------------------------------------------------------------------------

def test_lossless_on_the_corpora(extractor):
    notes = corpus_notes()
    assert len(notes) > 30
    for text, title in notes:
        if not PREFILTER(text):
            assert not extractor.mentions(text, title), text[:80]
            assert not any_rule_matches(text)


PHRASES = sorted({text for rule in RULES.target for text in rule.get("examples", [])} | {
    "no acute fracture", "INR 1.9", "PT/INR 14.2/1.3", "Plt42", "platelets 38 x10^9/L", "on apixaban",
    "T12 compression fx.", "vertebra plana", "cord compression", "retropulsed fragment", "afebrile",
    "Pt seen", "hip fracture", "symptoms", "MRI LUMBAR SPINE", "FINDINGS:", "IMPRESSION:", "Schmorl's node",
    "heparin flush", "epidural steroid injection", "fragility fracture", "bone marrow oedema",
    "metabolic", "DIC", "vWD", "İNR 3.1", "ſepsis", "FEVER", "fevers?", "T-score -2.9",
})
NOISE = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
PIECES = st.one_of(st.sampled_from(PHRASES), NOISE, st.sampled_from([" ", "\n", ". ", ", ", "\n\n", ":", "-", "/"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES, max_size=25).map("".join))
def test_lossless_on_generated_text(extractor, text):
    if PREFILTER(text):
        return
    assert not any_rule_matches(text)
    assert not extractor.mentions(text)


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES, max_size=40).map("".join))
def test_the_prefilter_is_exactly_the_rule_regexes(text):
    """Anchors only decide which regexes to run: the decision is the rules' own."""
    assert PREFILTER(text) == any_rule_matches(text)


def test_prefilter_is_compiled_from_the_rules(tmp_path):
    """An extra rule folder's literal makes notes with it pass (no hand-kept list)."""
    folder = tmp_path / "extra"
    (folder / "target").mkdir(parents=True)
    (folder / "target" / "kummell.json").write_text(json.dumps({"target_rules": [
        {"literal": "Kummell disease", "category": "FRACTURE", "pattern": r"\bK[uü]mmell(?:'s)?\s+disease\b"}]}))
    rules = load_rules([folder])
    assert not PREFILTER("Kummell disease at T12.")
    assert compile_prefilter(rules)("Kummell disease at T12.")


# --------------------------------------------------------------------------------------------
# The table of the shipped regexes' analyses (a cold start reads it instead of analysing)
# --------------------------------------------------------------------------------------------

def _table() -> dict:
    return json.loads(prefilter.ANALYSES.read_text(encoding="utf-8"))


def _made_here() -> bool:
    return _table()["key"] == prefilter._analysis_key()


@pytest.fixture
def fresh_analyses():
    """Forget the table and every computed analysis, before and after the test."""
    def forget():
        prefilter._shipped_analyses.cache_clear()
        prefilter._computed_analysis.cache_clear()
        prefilter._literals.cache_clear()
    forget()
    yield
    forget()


def test_the_table_holds_what_the_analysis_computes_for_every_shipped_regex(fresh_analyses, tmp_path):
    if not _made_here() and sys.version_info[:2] != (3, 11):
        pytest.skip("the table is made on Python 3.11 (CI's); on other versions the regexes are analysed")
    assert _made_here(), "pipeline/prefilter.py changed since the table was made: run `make analyses`"
    prefilter.write_analyses(tmp_path / "now.json")  # computed afresh (fresh_analyses)
    now = json.loads((tmp_path / "now.json").read_text(encoding="utf-8"))
    assert now["analyses"] == _table()["analyses"], "a shipped regex changed: run `make analyses`"
    assert len(now["analyses"]) == len(prefilter.shipped_patterns())


@pytest.mark.slow
def test_the_analysis_does_not_depend_on_the_string_hash_seed(tmp_path):
    """Sets yield their strings in an order that changes with each process's hash seed; the
    analysis must not (a float sum over a set ranked equal-cost anchor sets differently: seed 3
    gave a section heading's regex one more anchor than seed 1)."""
    import os
    import subprocess
    tables = []
    for seed in ("1", "3", "7"):
        path = tmp_path / f"seed-{seed}.json"
        subprocess.run([sys.executable, "-c", f"from pipeline.prefilter import write_analyses; "
                        f"from pathlib import Path; write_analyses(Path({str(path)!r}))"],
                       cwd=REPO, env={**os.environ, "PYTHONHASHSEED": seed}, check=True, capture_output=True)
        tables.append(json.loads(path.read_text(encoding="utf-8"))["analyses"])
    assert tables[0] == tables[1] == tables[2]


def test_building_the_pipeline_analyses_no_shipped_regex(fresh_analyses):
    if not _made_here():
        pytest.skip("the table was made on another Python version or by other code")
    from pipeline.nlp.extract import BatchProcessor
    BatchProcessor()
    assert prefilter._computed_analysis.cache_info().misses == 0


def test_only_a_table_made_by_this_code_on_this_python_is_read(fresh_analyses, tmp_path, monkeypatch):
    pattern = r"\bdoctored\s+regex\b"
    computed = texts(regex_plan(pattern).anchors)
    table = tmp_path / "analyses.json"
    monkeypatch.setattr(prefilter, "ANALYSES", table)
    entry = {f"{int(re.IGNORECASE)}:{pattern}": {"best": ["zebra"], "prefix": ["zebra"]}}
    for key, anchors in ((prefilter._analysis_key(), {"zebra"}), ("made by other code", computed)):
        table.write_text(json.dumps({"key": key, "analyses": entry}), encoding="utf-8")
        prefilter._shipped_analyses.cache_clear()
        assert texts(regex_plan(pattern).anchors) == anchors, key
    table.write_text("{not json", encoding="utf-8")
    prefilter._shipped_analyses.cache_clear()
    assert texts(regex_plan(pattern).anchors) == computed != {"zebra"}


def test_the_gate_and_the_matcher_share_one_analysis_of_a_regex(fresh_analyses, monkeypatch):
    monkeypatch.setattr(prefilter, "_shipped_analyses", lambda: {})
    pattern = r"(?m)^\s*(?:impression|conclusion)s?\s*:"
    regex_plan(pattern)  # the gate's plan (re.IGNORECASE)
    prefilter._literals(re.compile(pattern, re.IGNORECASE))  # the matcher's literals (its compiled flags)
    assert prefilter._computed_analysis.cache_info().misses == 1
