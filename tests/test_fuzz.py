"""Property tests: the extractor never raises and its offsets and levels are always sound."""

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.nlp.extract import BatchProcessor, process_batch

LEVELS = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + \
         [f"L{i}" for i in range(1, 6)] + [f"S{i}" for i in range(1, 6)]
ORDER = {level: i for i, level in enumerate(LEVELS)}
PHRASES = ["Acute L1 compression fracture", "marrow oedema at T12", "No retropulsion.", "INR 2.8",
           "platelets 45", "on apixaban, held", "IMPRESSION:", "FINDINGS:\n", "T11-L2", "C7/T1",
           "history of myeloma", "discitis L4-5", "epidural abscess", "S1", "wedge deformity T8 and T9",
           "possible fracture", "family history of", "\n\n", "  ", "; ", "?", "healed"]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])
noise = st.text(max_size=40)
clinical = st.lists(st.one_of(st.sampled_from(PHRASES), noise), max_size=12).map(" ".join)
texts = st.one_of(st.text(max_size=300), clinical)


def check(text, mentions):
    for m in mentions:
        assert 0 <= m["start"] < m["end"] <= len(text)
        assert text[m["start"]:m["end"]] == m["lexical_variant"]
        levels = list(m["levels"])
        assert all(level in ORDER for level in levels), levels
        assert [ORDER[x] for x in levels] == sorted(ORDER[x] for x in levels), levels


@SETTINGS
@given(text=texts, title=st.one_of(st.just(""), st.sampled_from(["MRI LUMBAR SPINE", "CT"]), st.text(max_size=20)))
def test_mentions_are_sound_and_deterministic(extractor, text, title):
    first = extractor.mentions(text, title)
    check(text, first)
    assert extractor.mentions(text, title) == first


@SETTINGS
@given(notes=st.lists(st.one_of(st.none(), texts), min_size=1, max_size=5))
def test_process_batch_accounts_for_every_note(notes):
    processor = _processor()
    batch = pd.DataFrame({"row": range(len(notes)), "note_id": [str(i) for i in range(len(notes))],
                          "person_id": "p", "note_date": pd.NaT, "note_title": "", "note_text": notes})
    batch["note_date"] = pd.to_datetime(batch["note_date"])
    note_rows, mentions = process_batch(batch, processor)
    assert note_rows["note_id"].tolist() == batch["note_id"].tolist()
    assert set(note_rows["status"]) <= {"processed", "no_trigger", "empty"}
    for _, m in mentions.iterrows():
        text = notes[int(m["note_id"])]
        assert text[m["start"]:m["end"]] == m["lexical_variant"]
        levels = [x for x in m["levels"].split(";") if x]
        assert [ORDER[x] for x in levels] == sorted(ORDER[x] for x in levels)
    again_notes, again_mentions = process_batch(batch, processor)
    pd.testing.assert_frame_equal(note_rows, again_notes)
    pd.testing.assert_frame_equal(mentions.drop(columns=["nlp_date", "nlp_datetime"], errors="ignore"),
                                  again_mentions.drop(columns=["nlp_date", "nlp_datetime"], errors="ignore"))


_cache = {}


def _processor():
    if "p" not in _cache:
        _cache["p"] = BatchProcessor()
    return _cache["p"]
