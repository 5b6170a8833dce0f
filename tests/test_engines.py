"""The local engine and the fast pipeline: same output whatever the workers, batching or shortcuts.

* ``--workers 2`` writes the same notes.csv, mentions.csv and patients.csv as
  ``--workers 1`` (only the run timestamps differ);
* splitting reader batches into tasks by text length changes nothing;
* the Extractor's shortcuts (gated regex matchers, sentence-restricted and
  grouped ConText, one ``doc.ents`` write, sections without token
  attributes, pipeline renewal) give the mentions of the plain
  ``build_nlp(...)(text)`` pipeline;
* the clinical tokenizer without spaCy's white-space special cases gives the
  same tokens as with them (they only stop spaCy from caching).
"""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest
import spacy
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.engines.local import _concat, run_batches, split_batch
from pipeline.nlp.extract import BatchProcessor, process_batch
from pipeline.nlp.pipeline import (
    Extractor,
    build_nlp,
    clinical_tokenizer,
    mark_note,
)
from pipeline.nlp.rules import load_rules
from pipeline.nlp.sentences import DOC_TEXT, target_sentence_ranges

from .conftest import DEMO, REPO

DEV = REPO / "corpora" / "dev" / "notes.jsonl"
RUN_STAMPS = ["nlp_date", "nlp_datetime"]


def corpus_notes() -> list[tuple[str, str]]:
    demo = pd.read_csv(DEMO, dtype=str, keep_default_na=False)
    notes = list(zip(demo.note_text, demo.note_title))
    if DEV.exists():
        for line in DEV.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            notes.append((row.get("note_text") or "", row.get("note_title") or ""))
    return notes


def canonical(notes: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({
        "row": range(len(notes)), "note_id": [f"n{i}" for i in range(len(notes))],
        "person_id": [f"p{i // 3}" for i in range(len(notes))], "note_date": pd.NaT,
        "note_title": [title for _, title in notes], "note_text": [text for text, _ in notes],
    })


# ------------------------------------------------------------------------------------------
# Workers
# ------------------------------------------------------------------------------------------

def screen(tmp_path, name, *options):
    out = tmp_path / name
    result = CliRunner().invoke(main, ["screen", str(DEMO), "-o", str(out), "-q", *options],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def read(folder, name):
    frame = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
    return frame.drop(columns=[c for c in RUN_STAMPS if c in frame.columns])


@pytest.mark.slow
def test_two_workers_write_what_one_writes(tmp_path):
    one = screen(tmp_path, "one", "--workers", "1")
    two = screen(tmp_path, "two", "--workers", "2", "--batch-size", "7")
    for name in ("notes.csv", "mentions.csv", "patients.csv"):
        pd.testing.assert_frame_equal(read(one, name), read(two, name), obj=name)
    assert len(read(one, "mentions.csv")) > 20


def test_the_notes_date_reaches_the_rules():
    """ "L1 fracture 2021" is history in a note of 2024, not in one of 2021 (a date the rules read)."""
    batch = canonical([("Seen today. L1 compression fracture 2021.", "CLINIC NOTE")] * 2)
    batch["note_date"] = pd.to_datetime(["2024-03-12", "2021-11-02"])
    _, mentions = process_batch(batch, BatchProcessor())
    fractures = mentions[mentions["concept"] == "FRACTURE"].sort_values("note_id")
    assert fractures["historical"].tolist() == [True, False]


def test_a_batch_without_mentions_gives_frames_typed_as_filled_ones():
    import warnings
    processor = BatchProcessor()
    quiet_notes, quiet = process_batch(canonical([("Seen in clinic today, well.", "")]), processor)
    notes, mentions = process_batch(canonical([("Acute L1 compression fracture.", "MRI")]), processor)
    assert quiet.empty and len(mentions)

    def dtypes(frame):  # a date's unit follows the input's on pandas 3 (seconds here), always ns on pandas 2
        return {column: dtype.kind if column == "note_date" else dtype for column, dtype in frame.dtypes.items()}
    assert dtypes(quiet) == dtypes(mentions)
    assert dtypes(quiet_notes) == dtypes(notes)
    assert str(quiet["value"].dtype) == "float64" and str(quiet["negated"].dtype) == "bool"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # pandas: concatenating untyped empty frames
        joined = pd.concat([mentions.assign(value=float("nan")), quiet], ignore_index=True)
    assert str(joined["value"].dtype) == "float64"


def test_a_match_that_starts_before_its_anchor_keeps_its_start():
    text = "Findings: Post-kyphoplasty cement at T12. Prior vertebroplasty cement at L1."
    fast = [(m["concept"], m["lexical_variant"], m["start"]) for m in Extractor().mentions(text)]
    plain = [(m["concept"], m["lexical_variant"], m["start"]) for m in build_nlp()(text)._.vertebro_mentions]
    assert fast == plain
    assert ("PRIOR_AUGMENTATION", "Post-kyphoplasty cement", 10) in fast


def test_tasks_cut_by_text_length_give_the_same_frames():
    notes = corpus_notes()
    batch = canonical(notes)
    processor = BatchProcessor()
    whole_notes, whole_mentions = process_batch(batch, processor)
    # three reader batches, cut into many small tasks, through two worker processes
    batches = [(i, batch.iloc[start:start + 60].reset_index(drop=True))
               for i, start in enumerate(range(0, len(batch), 60))]
    results = list(run_batches(batches, processor, workers=2, max_chars=1500, max_tasks=3))
    assert [index for index, _, _ in results] == [index for index, _ in batches]
    notes_out = pd.concat([n for _, n, _ in results], ignore_index=True)
    mentions_out = pd.concat([m for _, _, m in results if len(m)], ignore_index=True)
    pd.testing.assert_frame_equal(notes_out, whole_notes)
    pd.testing.assert_frame_equal(mentions_out, whole_mentions)


def test_split_batch_by_characters():
    batch = canonical([("a" * 10, ""), ("b" * 10, ""), ("c" * 100, ""), ("d" * 5, ""), (None, "")])
    parts = split_batch(batch, max_chars=25)
    assert [len(p) for p in parts] == [2, 1, 2]          # the long note alone; None counts as 0
    assert pd.concat(parts).equals(batch)
    assert [len(p) for p in split_batch(batch, max_chars=10**6)] == [5]
    assert len(split_batch(batch.iloc[:0])) == 1


def test_concat_keeps_dtypes_of_filled_frames():
    filled = pd.DataFrame({"a": [True], "b": [1]})
    empty = filled.iloc[:0].astype(object)
    assert _concat([empty, filled, empty]).dtypes.tolist() == filled.dtypes.tolist()
    assert len(_concat([empty, empty])) == 0


# ------------------------------------------------------------------------------------------
# The fast Extractor is the plain pipeline
# ------------------------------------------------------------------------------------------

def reference_mentions(nlp, text: str, title: str) -> list[dict]:
    doc = nlp.make_doc(text)
    mark_note(doc, text, title)
    return nlp(doc)._.vertebro_mentions or []


@pytest.fixture(scope="module")
def reference():
    return build_nlp(rules=load_rules())


def test_extractor_gives_the_plain_pipeline_mentions(extractor, reference):
    notes = corpus_notes()
    total = 0
    for text, title in notes:
        expected = reference_mentions(reference, text, title)
        assert extractor.mentions(text, title) == expected, text[:80]
        total += len(expected)
    assert total > 100


def test_renewal_changes_nothing(reference):
    renewing = Extractor(renew_every=4, max_strings=500)
    notes = corpus_notes()[:40]
    for text, title in notes:
        assert renewing.mentions(text, title) == reference_mentions(reference, text, title)
    assert renewing.renewals >= 5
    # the string store stays bounded
    assert len(renewing.nlp.vocab.strings) < 20_000


SENTENCES = [
    "No fever, chills or night sweats.", "Acute compression fracture of L1 with marrow oedema.",
    "No retropulsion.", "History of hip fracture in 2019.", "Possible infection? Will treat.",
    "Known myeloma.", "Apixaban held since Monday.", "INR 1.2, Plt 201.", "FINDINGS:", "IMPRESSION:",
    "There is no evidence of", "epidural abscess", "or discitis.", "Denies back pain.", "T12",
    "Old healed fracture of T8 without oedema, not acute.", "Rule out fracture.", "Mother had osteoporosis.",
]


def test_extractor_on_shuffled_sentences(extractor, reference):
    """Targets and modifiers in many sentence arrangements (ConText groups, cross-line modifiers)."""
    rng = random.Random(5)
    for _ in range(150):
        pieces = rng.choices(SENTENCES, k=rng.randint(1, 9))
        text = "".join(piece + rng.choice([" ", "\n", "\n\n", " "]) for piece in pieces)
        title = rng.choice(["", "MRI LUMBAR SPINE", "Progress note"])
        assert extractor.mentions(text, title) == reference_mentions(reference, text, title), text


def test_target_sentence_ranges(extractor):
    text = "Seen today. No fever.\nFINDINGS: Acute L1 fracture.\nPlan: review."
    doc = extractor(text)
    ranges = target_sentence_ranges(doc)
    assert ranges and all(start < end for start, end in ranges)
    covered = {i for start, end in ranges for i in range(start, end)}
    assert all(token.i in covered for ent in doc.ents for token in ent)
    assert doc.user_data[DOC_TEXT] == text


def test_sentence_of_is_spans_sent(extractor):
    """The sentence bounds read from the splitter's starts are spaCy's ``Span.sent``, for every
    target of the corpora and for spans that cross a sentence boundary (the sentence of their
    first token) or end on one."""
    from pipeline.nlp.sentences import SENTENCE_STARTS, sentence_of, sentence_token_starts

    checked = 0
    for text, title in corpus_notes()[:120]:
        doc = extractor(text, title)
        starts = sentence_token_starts(doc)
        if not len(doc):
            continue
        assert starts == doc.user_data[SENTENCE_STARTS] == [t.i for t in doc if t.is_sent_start]
        spans = list(doc.ents) + [doc[i:min(i + 3, len(doc))] for i in range(0, len(doc), 7)]
        for span in spans:
            sentence = span.sent
            assert sentence_of(doc, starts, span.start) == (sentence.start, sentence.end)
            checked += 1
    assert checked > 1000
    del doc.user_data[SENTENCE_STARTS]  # read back from the tokens when the splitter left none
    assert sentence_token_starts(doc) == starts


HEADINGS = ["FINDINGS:", "Impression:", "IMPRESSION", "History: ", "  Technique: ", "PMH:", "Plan -",
            "Comparison: none.", "Indication: back pain", "Medications:", "Labs:", "Family history:"]


def test_fast_regex_matchers_give_medspacys_matches(extractor, reference):
    """Case-free patterns on the folded text, the anchor gate and the union of the line-start
    section patterns: the matches of medspaCy's own regex matcher, in its order."""
    def regex_matcher(component):
        for name in ("_TargetMatcher__matcher", "_Sectionizer__matcher", "_ConText__matcher"):
            if hasattr(component, name):
                matcher = getattr(component, name)
                return getattr(matcher, "inner", matcher)._MedspacyMatcher__regex_matcher
    names = ["medspacy_target_matcher", "medspacy_sectionizer", "medspacy_context"]
    ours = {name: regex_matcher(component) for name, component in extractor.nlp.pipeline if name in names}
    plain = {name: regex_matcher(component) for name, component in reference.pipeline if name in names}
    assert ours["medspacy_sectionizer"]._line_union is not None
    rng = random.Random(11)
    texts = [text for text, _ in corpus_notes()]
    for _ in range(100):
        pieces = rng.choices(SENTENCES + HEADINGS, k=rng.randint(1, 12))
        texts.append("".join(piece + rng.choice(["\n", "\n", " ", "\n\n"]) for piece in pieces))
    found = 0
    for text in texts:
        doc = extractor(text)
        for name in names:
            expected = plain[name](doc)
            assert ours[name](doc) == expected, (name, text[:0])
            found += name == "medspacy_sectionizer" and len(expected)
    assert found > 50


# ------------------------------------------------------------------------------------------
# Tokenizer
# ------------------------------------------------------------------------------------------

def test_removing_whitespace_special_cases_keeps_every_token():
    """clinical_tokenizer drops spaCy's white-space special cases (they stop its cache after the
    first line break); on the corpora and on white-space-heavy text the tokens are the same."""
    ours = spacy.blank("en")
    clinical_tokenizer(ours)
    assert not [key for key in ours.tokenizer.rules if not key.strip()]
    with_rules = spacy.blank("en")
    rules = dict(with_rules.tokenizer.rules)
    clinical_tokenizer(with_rules)
    with_rules.tokenizer.rules = rules  # the clinical affixes, plus the white-space special cases
    assert [key for key in with_rules.tokenizer.rules if not key.strip()]
    texts = [text for text, _ in corpus_notes()]
    rng = random.Random(3)
    spaces = [" ", "  ", "\n", "\n\n", "\t", " \n ", "\r\n", "\u00a0", "   \n"]
    for _ in range(200):
        texts.append("".join(rng.choice(SENTENCES) + rng.choice(spaces) for _ in range(rng.randint(1, 8))))
    for text in texts:
        a = [(t.text, t.whitespace_, t.idx) for t in ours.make_doc(text)]
        b = [(t.text, t.whitespace_, t.idx) for t in with_rules.make_doc(text)]
        assert a == b, text[:80]


def test_wrap_tolerant_matcher_gives_spacys_matches_in_spacys_order(extractor):
    """The ConText phrase matcher that replaces spaCy's: same matches, same order, on wrapped text."""
    from pipeline.nlp.pipeline import WrapTolerantMatcher
    spacy_matcher = extractor._context._ConText__matcher.inner._MedspacyMatcher__matcher
    assert WrapTolerantMatcher.covers(spacy_matcher)
    fast = WrapTolerantMatcher(spacy_matcher)
    phrases = [" ".join(token["LOWER"] for token in patterns[0][::2])
               for patterns in spacy_matcher._patterns.values()]
    assert len(phrases) > 50
    rng = random.Random(3)
    total = 0
    for _ in range(800):
        parts = []
        for _ in range(rng.randint(1, 10)):
            phrase = rng.choice(phrases + ["cannot exclude", "No\n\nevidence  of", "fracture.", "x"])
            phrase = phrase.replace(" ", rng.choice([" ", "\n", "  ", " \n ", "\n\n", "\t"]))
            parts.append(phrase.upper() if rng.random() < 0.3 else phrase)
        doc = extractor.nlp.make_doc(rng.choice([" ", "\n", ", ", ""]).join(parts))
        expected = spacy_matcher(doc)
        assert fast(doc) == expected
        total += len(expected)
    assert total > 1000


def _scaled(processor, shared, item):
    return (item * shared, processor.use_prefilter)


def test_map_in_workers_gives_the_inline_results_in_order():
    from pipeline.engines.local import map_in_workers
    processor = BatchProcessor.__new__(BatchProcessor)  # only the attribute the function reads
    processor.use_prefilter = True
    inline = list(map_in_workers(_scaled, range(7), processor, workers=1, shared=3))
    forked = list(map_in_workers(_scaled, range(7), processor, workers=2, shared=3))
    assert inline == forked == [(i, (3 * i, True)) for i in range(7)]
