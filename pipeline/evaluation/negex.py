"""The ConText layer on the NegEx/ConText test-set format.

The NegEx test set (Chapman et al.; ``rsAnnotations-1-120-random.txt`` of the
``chapmanbe/negex`` project) has one clinical condition per row, in its
sentence, annotated by a physician::

    line number <TAB> condition <TAB> sentence <TAB> negation <TAB> temporality <TAB> experiencer

with one header line. Each row is run through vertebro's own context layer:
the condition becomes the only target span of a document made of its
sentence (the whole test-set "sentence" is one sentence), labelled
``CONDITION`` — a label that only the classic rule families (negation,
uncertainty, historical, hypothetical, family, which have no
``allowed_types``) apply to — then the sectionizer, ConText and
``vertebro_attributes`` run as they do on a note.

Mapping of our attributes to the test set's values:

* negation: ``negated`` → ``Negated``, else ``Affirmed`` (an uncertain
  condition is affirmed: in the test set "rule out pneumonia" and "may
  represent metastatic lesion" are annotated Affirmed; a gold ``Possible`` is
  scored as not negated);
* temporality: ``historical`` → ``Historical``, ``hypothetical`` →
  ``Hypothetical``, else ``Recent``. The gold value ``Not particular`` is the
  test set's name for ConText's hypothetical class ("call if chest pain",
  "return if he develops nausea"), so it is scored as ``Hypothetical`` — as
  in Harkema et al. 2009 (ConText), where the third temporality value is
  hypothetical;
* experiencer: ``family`` → ``Other``, else ``Patient``; the gold values
  ``Family member`` and ``Other`` are both ``Other`` (not the patient).

White space runs in a sentence (flattened line breaks of the original
report) are collapsed to one space before it is processed. The condition is
located in its sentence case-insensitively with flexible
white space; then ignoring punctuation; then by the longest run of matching
words (at least half the condition's words). When all fail the whole sentence
is the target, and the row is counted (``target_not_found``).
"""

from __future__ import annotations

import csv
import difflib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..io.writers import make_private_dir, write_csv, write_json
from ..nlp.pipeline import Extractor

#: The label of the test set's condition spans. Not one of our concepts, so
#: only the rules without ``allowed_types`` (the classic NegEx/ConText
#: families) can modify it.
CONDITION_LABEL = "CONDITION"

NEGATION = ("Negated", "Affirmed")
TEMPORALITY = ("Recent", "Historical", "Hypothetical")
EXPERIENCER = ("Patient", "Other")

GOLD_NEGATION = {"negated": "Negated", "affirmed": "Affirmed", "possible": "Affirmed"}
GOLD_TEMPORALITY = {"recent": "Recent", "historical": "Historical", "hypothetical": "Hypothetical",
                    "not particular": "Hypothetical"}
GOLD_EXPERIENCER = {"patient": "Patient", "other": "Other", "family member": "Other", "family": "Other"}

# The components that run once the target is set (as on a note with targets).
AFTER_TARGETS = ("medspacy_sectionizer", "medspacy_context", "vertebro_attributes")

_WORD = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True)
class TestRow:
    line: str
    condition: str
    sentence: str
    negation: str
    temporality: str
    experiencer: str


def read_testset(path: str | Path) -> list[TestRow]:
    """The rows of a NegEx-format file (header skipped); gold values normalised."""
    rows = []
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file")
        for number, fields in enumerate(reader, start=2):
            if not any(field.strip() for field in fields):
                continue
            if len(fields) < 6:
                raise ValueError(f"{path}, line {number}: expected 6 tab-separated fields, found {len(fields)}")
            line, condition, sentence, negation, temporality, experiencer = (f.strip() for f in fields[:6])
            gold = []
            for value, mapping in ((negation, GOLD_NEGATION), (temporality, GOLD_TEMPORALITY),
                                   (experiencer, GOLD_EXPERIENCER)):
                if value.lower() not in mapping:
                    raise ValueError(f"{path}, line {number}: unknown annotation value {value!r}")
                gold.append(mapping[value.lower()])
            rows.append(TestRow(line, condition, sentence, *gold))
    return rows


def locate(condition: str, sentence: str) -> tuple[int, int, str]:
    """Character span of ``condition`` in ``sentence`` and how it was found.

    ``how`` is ``exact`` (case and white space aside), ``words`` (punctuation
    aside), ``fuzzy`` (longest run of matching words) or ``sentence`` (not
    found: the whole sentence).
    """
    words = condition.split()
    if words:
        exact = r"\s+".join(map(re.escape, words))
        for pattern in (rf"(?<!\w){exact}(?!\w)", exact):
            matches = list(re.finditer(pattern, sentence, re.IGNORECASE))
            if matches:
                # the test set writes its condition in capitals inside the sentence;
                # a heading ("ALLERGIES: no known allergies") is not the condition
                capitals = [m for m in matches if m.group() == m.group().upper() != m.group().lower()]
                not_headings = [m for m in capitals if not sentence[m.end():].lstrip(" ").startswith(":")]
                match = (not_headings or capitals or matches)[0]
                return match.start(), match.end(), "exact"
    condition_words = [w.lower() for w in _WORD.findall(condition)]
    sentence_words = list(_WORD.finditer(sentence))
    if condition_words and sentence_words:
        loose = re.compile(r"\W+".join(map(re.escape, condition_words)), re.IGNORECASE)
        match = loose.search(sentence)
        if match:
            return match.start(), match.end(), "words"
        lowered = [w.group().lower() for w in sentence_words]
        matcher = difflib.SequenceMatcher(a=condition_words, b=lowered, autojunk=False)
        block = max(matcher.get_matching_blocks(), key=lambda b: b.size)
        if block.size and block.size * 2 >= len(condition_words):
            first, last = sentence_words[block.b], sentence_words[block.b + block.size - 1]
            return first.start(), last.end(), "fuzzy"
    stripped = sentence.strip()
    start = sentence.find(stripped) if stripped else 0
    return start, start + len(stripped), "sentence"


class ConditionContext:
    """Runs vertebro's section and context layer on one condition in one sentence."""

    def __init__(self, extractor: Extractor):
        self.nlp = extractor.nlp
        self.components = [proc for name, proc in self.nlp.pipeline if name in AFTER_TARGETS]

    def __call__(self, sentence: str, start: int, end: int) -> dict:
        doc = self.nlp.make_doc(sentence)
        if not len(doc):
            return {"negated": False, "uncertain": False, "historical": False,
                    "hypothetical": False, "family": False, "cues": ""}
        for token in doc:
            token.is_sent_start = token.i == 0
        span = doc.char_span(start, end, label=CONDITION_LABEL, alignment_mode="expand")
        if span is None or not len(span):
            span = doc.char_span(0, len(sentence), label=CONDITION_LABEL, alignment_mode="expand")
        doc.ents = [span]
        for proc in self.components:
            doc = proc(doc)
        mention = (doc._.vertebro_mentions or [{}])[0]
        target = doc.ents[0]
        cues = sorted({f"{modifier.rule.literal} ({modifier.category})" for modifier in target._.modifiers})
        return {name: bool(mention.get(name, False))
                for name in ("negated", "uncertain", "historical", "hypothetical", "family")} \
            | {"cues": "; ".join(cues)}


def to_labels(flags: dict) -> tuple[str, str, str]:
    """Our attributes as the test set's (negation, temporality, experiencer)."""
    negation = "Negated" if flags["negated"] else "Affirmed"
    temporality = "Historical" if flags["historical"] else "Hypothetical" if flags["hypothetical"] else "Recent"
    experiencer = "Other" if flags["family"] else "Patient"
    return negation, temporality, experiencer


def predict(rows: list[TestRow], extractor: Extractor) -> pd.DataFrame:
    """One prediction row per test row (with the gold values and how the target was found)."""
    context = ConditionContext(extractor)
    records = []
    for row in rows:
        # the sentences carry their report's flattened line breaks as runs of spaces
        sentence = " ".join(row.sentence.split())
        start, end, how = locate(row.condition, sentence)
        flags = context(sentence, start, end)
        negation, temporality, experiencer = to_labels(flags)
        records.append({
            "line": row.line, "negation": negation, "temporality": temporality,
            "experiencer": experiencer, "gold_negation": row.negation,
            "gold_temporality": row.temporality, "gold_experiencer": row.experiencer,
            "target_match": how, "uncertain": flags["uncertain"], "cues": flags["cues"],
        })
    return pd.DataFrame.from_records(records, columns=[
        "line", "negation", "temporality", "experiencer", "gold_negation", "gold_temporality",
        "gold_experiencer", "target_match", "uncertain", "cues"])


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def class_scores(gold: pd.Series, predicted: pd.Series, label: str) -> dict:
    """Precision, recall and F1 of one class, with the counts they come from."""
    tp = int(((gold == label) & (predicted == label)).sum())
    fp = int(((gold != label) & (predicted == label)).sum())
    fn = int(((gold == label) & (predicted != label)).sum())
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = (round(2 * precision * recall / (precision + recall), 4)
          if precision is not None and recall is not None and precision + recall else None)
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn,
            "support": int((gold == label).sum())}


def dimension_scores(gold: pd.Series, predicted: pd.Series, labels: tuple[str, ...]) -> dict:
    confusion = Counter(zip(gold, predicted))
    return {
        "accuracy": _ratio(int((gold == predicted).sum()), len(gold)),
        "n": len(gold),
        "classes": {label: class_scores(gold, predicted, label) for label in labels},
        "confusion": {f"{g} -> {p}": n for (g, p), n in sorted(confusion.items())},
    }


def score(predictions: pd.DataFrame) -> dict:
    """Metrics per dimension (see the module docstring for the mapping of gold values)."""
    negation = dimension_scores(predictions["gold_negation"], predictions["negation"], NEGATION)
    negation.update({key: negation["classes"]["Negated"][key] for key in ("precision", "recall", "f1")})
    return {
        "rows": len(predictions),
        "target_match": {key: int(n) for key, n in predictions["target_match"].value_counts().items()},
        "target_not_found": int((predictions["target_match"] == "sentence").sum()),
        "negation": negation,
        "temporality": dimension_scores(predictions["gold_temporality"], predictions["temporality"], TEMPORALITY),
        "experiencer": dimension_scores(predictions["gold_experiencer"], predictions["experiencer"], EXPERIENCER),
        "mapping": {
            "negation": "negated -> Negated, else Affirmed; gold Possible scored as not negated",
            "temporality": "historical -> Historical, hypothetical -> Hypothetical, else Recent; "
                           "gold 'Not particular' scored as Hypothetical",
            "experiencer": "family -> Other, else Patient; gold 'Family member' scored as Other",
        },
    }


def summarise(metrics: dict) -> str:
    negation = metrics["negation"]
    lines = [
        f"{metrics['rows']} conditions ({metrics['target_not_found']} not found in their sentence)",
        f"negation: precision {negation['precision']}, recall {negation['recall']}, "
        f"F1 {negation['f1']}, accuracy {negation['accuracy']}",
        f"temporality: accuracy {metrics['temporality']['accuracy']}",
        f"experiencer: accuracy {metrics['experiencer']['accuracy']}",
    ]
    return "\n".join(lines)


def evaluate_context(file: str | Path, outdir: str | Path, patterns=()) -> str:
    """Run the context layer on a NegEx-format file; write predictions and metrics.

    Writes ``OUTDIR/predictions.csv`` (line number, negation, temporality,
    experiencer, then the gold values, how the condition was located and the
    cues that applied) and ``OUTDIR/metrics.json``. Returns a short summary.
    """
    rows = read_testset(file)
    if not rows:
        raise ValueError(f"{file}: no test rows after the header")
    extractor = Extractor(patterns=list(patterns))
    predictions = predict(rows, extractor)
    metrics = score(predictions)
    outdir = make_private_dir(outdir)
    write_csv(predictions, outdir / "predictions.csv")
    write_json(metrics, outdir / "metrics.json")
    return summarise(metrics)
