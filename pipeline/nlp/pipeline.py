"""Assemble the spaCy/medspaCy pipeline from the rule files.

    blank English tokenizer (clinical fixes)
      → vertebro_sentences      fast clinical sentence splitter (no PyRuSH)
      → medspacy_target_matcher  one rule file per concept family
      → vertebro_labs            INR / PT / platelet values
      → medspacy_sectionizer     our radiology and clinical section rules
      → medspacy_context         negation, uncertainty, history, hypothetical,
                                 family, acuity, correction, medication status
      → vertebro_attributes      levels, acuity, aetiology, section effects

The last four run only on documents with at least one target: a note with
no target has nothing for them to do.
"""


import logging
import re
from pathlib import Path

import spacy
from medspacy.context import ConText, ConTextRule
from medspacy.section_detection import Sectionizer, SectionRule
from medspacy.target_matcher import TargetMatcher, TargetRule
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import compile_infix_regex, compile_prefix_regex

from . import attributes as _attributes  # noqa: F401  (registers vertebro_attributes)
from . import sentences as _sentences  # noqa: F401  (registers vertebro_sentences)
from .labs import find_lab_values
from .rules import RuleSet, load_rules, medspacy_arguments

logger = logging.getLogger(__name__)

SPAN_EXTENSIONS = {
    "scope": "", "aetiology": "", "acuity": "", "anatomy": "", "historical": False,
    "labs": (),
}


def register_extensions() -> None:
    """Span extensions our rules and components set (idempotent)."""
    for name, default in SPAN_EXTENSIONS.items():
        if not Span.has_extension(f"rule_{name}"):
            Span.set_extension(f"rule_{name}", default=default)
    if not Span.has_extension("target_rule"):
        Span.set_extension("target_rule", default=None)
    if not Doc.has_extension("vertebro_mentions"):
        Doc.set_extension("vertebro_mentions", default=None)
    if not Doc.has_extension("spine_note"):
        Doc.set_extension("spine_note", default=False)


def clinical_tokenizer(nlp: Language) -> None:
    """Tokenisation fixes for clinical text, in place.

    ``INR:2.4`` → ``INR : 2.4``; ``Plt42`` → ``Plt 42``; ``14.2/1.3`` →
    ``14.2 / 1.3``. The whitespace special cases are removed from the
    tokenizer rules: with them spaCy stops caching after the first newline of
    a text (spaCy issue #13950); the tokens are the same without them.
    """
    infixes = list(nlp.Defaults.infixes) + [
        r"(?<=[A-Za-z]):(?=\d)",
        r"(?<=\d)/(?=\d)",
        r"(?<=[A-Za-z])/(?=[A-Za-z0-9])",
    ]
    prefixes = list(nlp.Defaults.prefixes) + [r"(?i:plts?|inr)(?=\d)"]
    nlp.tokenizer.infix_finditer = compile_infix_regex(infixes).finditer
    nlp.tokenizer.prefix_search = compile_prefix_regex(prefixes).search
    rules = {key: value for key, value in nlp.tokenizer.rules.items() if key.strip()}
    nlp.tokenizer.rules = rules


@Language.factory("vertebro_labs")
def make_lab_finder(nlp: Language, name: str):
    return LabFinder()


class LabFinder:
    """Adds INR / PT / platelet values to ``doc.ents`` as COAGULOPATHY spans.

    Each span carries its values in ``span._.rule_labs`` (``PT/INR 14.2/1.3``
    is one span with two values). A value overlapping a rule match is left to
    the rule match.
    """

    def __call__(self, doc: Doc) -> Doc:
        labs = find_lab_values(doc.text)
        if not labs:
            return doc
        by_span: dict[tuple[int, int], list] = {}
        for lab in labs:
            by_span.setdefault((lab.start, lab.end), []).append(lab)
        taken = {token.i for ent in doc.ents for token in ent}
        new = []
        last_end = -1
        for (start, end), values in sorted(by_span.items()):
            span = doc.char_span(start, end, label="COAGULOPATHY", alignment_mode="expand")
            if span is None or span.start < last_end or any(i in taken for i in range(span.start, span.end)):
                continue
            span._.rule_labs = tuple(values)
            new.append(span)
            last_end = span.end
        if new:
            doc.ents = sorted(list(doc.ents) + new, key=lambda span: span.start)
        return doc


def build_nlp(patterns: list[str | Path] = (), rules: RuleSet | None = None) -> Language:
    """Build the pipeline from the shipped rules plus extra rule folders."""
    register_extensions()
    rules = rules or load_rules(list(patterns))
    nlp = spacy.blank("en")
    clinical_tokenizer(nlp)
    nlp.add_pipe("vertebro_sentences")

    target_matcher: TargetMatcher = nlp.add_pipe("medspacy_target_matcher")
    target_rules = []
    for rule in rules.target:
        arguments = medspacy_arguments(rule)
        attributes = arguments.pop("attributes", None) or {}
        arguments["attributes"] = {f"rule_{key}": value for key, value in attributes.items()} or None
        target_rules.append(TargetRule(**arguments))
    target_matcher.add(target_rules)

    nlp.add_pipe("vertebro_labs")

    sectionizer: Sectionizer = nlp.add_pipe(
        "medspacy_sectionizer", config={"rules": None, "span_attrs": None, "require_start_line": True})
    sectionizer.add([SectionRule(**medspacy_arguments(rule)) for rule in rules.sections])

    context: ConText = nlp.add_pipe("medspacy_context", config={"rules": None, "span_attrs": None})
    context_rules = []
    for rule in rules.context:
        arguments = medspacy_arguments(rule)
        for key in ("allowed_types", "excluded_types", "terminated_by"):
            if arguments.get(key) is not None:
                arguments[key] = set(arguments[key])
        context_rules.append(ConTextRule(**arguments))
    context.add(context_rules)

    nlp.add_pipe("vertebro_attributes", config={"section_implies": rules.section_implies})
    return nlp


class Extractor:
    """Runs the pipeline on one text at a time, skipping what has nothing to do.

    ``extractor(text)`` returns the processed ``Doc``; its mentions, with every
    attribute, are in ``doc._.vertebro_mentions`` (a list of dicts).
    """

    def __init__(self, patterns: list[str | Path] = (), rules: RuleSet | None = None):
        self.rules = rules or load_rules(list(patterns))
        self.nlp = build_nlp(rules=self.rules)
        self._always = [(name, proc) for name, proc in self.nlp.pipeline
                        if name in ("vertebro_sentences", "medspacy_target_matcher", "vertebro_labs")]
        self._when_targets = [(name, proc) for name, proc in self.nlp.pipeline
                              if (name, proc) not in self._always]

    def __call__(self, text: str, title: str = "") -> Doc:
        doc = self.nlp.make_doc(text)
        doc._.spine_note = is_spine_note(text, title)
        for _name, proc in self._always:
            doc = proc(doc)
        if doc.ents:
            for _name, proc in self._when_targets:
                doc = proc(doc)
        if doc._.vertebro_mentions is None:
            doc._.vertebro_mentions = []
        return doc

    def mentions(self, text: str, title: str = "") -> list[dict]:
        return self(text, title)._.vertebro_mentions


SPINE_NOTE = re.compile(
    r"\b(?:spine|spinal|[CTL]-?spine|lumbar|thoracic\s+(?:spine|vertebra)|cervical\s+spine|thoracolumbar|"
    r"lumbosacral|sacrum|vertebra\w*|kyphoplasty|vertebroplasty|myelogra\w*|DEXA|DXA|bone\s+scan|"
    r"bone\s+densit\w*|whole\s+body|skeletal\s+survey)\b",
    re.IGNORECASE,
)


def is_spine_note(text: str, title: str = "") -> bool:
    """A report about the spine: a bare "no acute fracture" in it is about the vertebrae."""
    return bool(SPINE_NOTE.search(title or "") or SPINE_NOTE.search(text[:300]))
