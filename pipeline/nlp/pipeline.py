"""Assemble the spaCy/medspaCy pipeline from the rule files.

    blank English tokenizer (clinical fixes)
      → vertebro_sentences      fast clinical sentence splitter (no PyRuSH)
      → medspacy_target_matcher  one rule file per concept family
      → vertebro_labs            INR / PT / platelet values
      → medspacy_sectionizer     our radiology and clinical section rules
      → medspacy_context         negation, uncertainty, history, hypothetical,
                                 family, acuity, correction, medication status
      → vertebro_attributes      levels, acuity, aetiology, section effects

The last four run only on documents with at least one target that becomes a
mention (not a fracture of the hip, say): otherwise they have nothing to do.
"""


import logging
import re
from pathlib import Path
from types import MethodType

import spacy
from medspacy.context import ConText, ConTextRule
from medspacy.section_detection import Sectionizer, SectionRule
from medspacy.section_detection.util import is_start_line
from medspacy.target_matcher import TargetMatcher, TargetRule
from spacy.language import Language
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc, Span
from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex, registry

from . import attributes as _attributes  # noqa: F401  (registers vertebro_attributes)
from . import sentences as _sentences  # noqa: F401  (registers vertebro_sentences)
from .attributes import NOTE_DATE, note_date, reported_targets
from .labs import find_lab_values
from .levels import enclosing_brackets
from .sentences import doc_text, sentence_of, sentence_token_starts
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
    if not Doc.has_extension("imaging_report"):
        # unknown (a Doc no one marked): as an imaging report, the stricter reading
        Doc.set_extension("imaging_report", default=True)
    if not Doc.has_extension("procedure_note"):
        Doc.set_extension("procedure_note", default=False)


def clinical_tokenizer(nlp: Language) -> None:
    """Tokenisation fixes for clinical text, in place.

    ``INR:2.4`` → ``INR : 2.4``; ``Plt42`` → ``Plt 42``; ``14.2/1.3`` →
    ``14.2 / 1.3``. The whitespace special cases are removed from the
    tokenizer rules: with them spaCy stops caching after the first newline of
    a text (spaCy issue #13950); the tokens are the same without them.
    """
    nlp.tokenizer = _clinical_tokenizer(nlp)


@registry.tokenizers("vertebro.ClinicalTokenizer.v1")
def _clinical_tokenizer_factory():
    return _clinical_tokenizer


def _clinical_tokenizer(nlp: Language) -> Tokenizer:
    """English's tokenizer (spaCy's ``create_tokenizer``) with the clinical fixes of :func:`clinical_tokenizer`."""
    defaults = nlp.Defaults
    infixes = list(defaults.infixes) + [
        r"(?<=[A-Za-z]):(?=\d)",
        r"(?<=\d)/(?=\d)",
        r"(?<=[A-Za-z])/(?=[A-Za-z0-9])",
    ]
    prefixes = list(defaults.prefixes) + [r"(?i:plts?|inr)(?=\d)"]
    # one tokenizer built once: each setter would reload the ~5,000 special cases
    # (0.1 s each time, paid by every run and every pipeline renewal)
    return Tokenizer(
        nlp.vocab,
        rules={key: value for key, value in defaults.tokenizer_exceptions.items() if key.strip()},
        prefix_search=compile_prefix_regex(prefixes).search,
        suffix_search=compile_suffix_regex(defaults.suffixes).search,
        infix_finditer=compile_infix_regex(infixes).finditer,
        token_match=defaults.token_match,
        url_match=defaults.url_match,
    )


def clinical_blank() -> Language:
    """A blank English pipeline with the clinical tokenizer (English's own is never built)."""
    return spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "vertebro.ClinicalTokenizer.v1"}}})


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
        labs = find_lab_values(doc_text(doc), note_date(doc))
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


def _limit_scope(self, other) -> bool:
    """``ConTextModifier.limit_scope`` of medspaCy 1.3.1, with "overlap" meaning overlap.

    medspaCy asks ``tuple_overlaps(self.scope_span, other.scope_span)``, true
    only when one of *other*'s ends lies inside *self*'s scope. Once a first
    terminating word has shortened a modifier's scope, a second one whose
    scope is the whole sentence encloses it and no longer limits it: in "The
    patient is a 55-year-old woman with carcinoma, which was diagnosed two
    years ago", "which" stopped "years ago" reaching the carcinoma only until
    another terminating cue ("patient is") had limited it first. A terminating
    rule spares the modifiers whose rules' metadata hold a key its
    ``metadata.spares`` names. Everything else is medspaCy's method as written.
    """
    (a_start, a_end), (b_start, b_end) = self.scope_span, other.scope_span
    if not (a_start < b_end and b_start < a_end):
        return False
    if self.direction.upper() == "TERMINATE":
        return False
    if other.direction.upper() == "TERMINATE" and any(
            (self.rule.metadata or {}).get(key) for key in (other.rule.metadata or {}).get("spares", ())):
        return False  # a semicolon ends a denial's reach, not a course's end ("pneumonia; completed antibiotics")
    if (other.direction.upper() != "TERMINATE" and other.category.upper() not in self.rule.terminated_by
            and other.category.upper() != self.category.upper()):
        return False
    if self.category == other.category and (
            self.allowed_types != other.allowed_types or self.excluded_types != other.excluded_types):
        return False
    if (self.rule.metadata or {}).get("list") and self.category == other.category:
        # a list's head (metadata.list) reaches past a cue of its own category in the list:
        # "Consent discussed incl. cement leak, adjacent-level fracture risk, infection, bleeding"
        # (the backward "risk" is the fracture's), "DDx discitis (less likely) and osteoporotic
        # vertebral fracture"
        return False
    original = self.scope_span
    if self.direction.lower() in ("forward", "bidirectional") and other > self:
        self._scope_end = min(self._scope_end, other.modifier_span[0])
    if self.direction.lower() in ("backward", "bidirectional") and other < self:
        self._scope_start = max(self._scope_start, other.modifier_span[1])
    return original != self.scope_span


def _words_scope(self, doc: Doc) -> None:
    """``ConTextModifier.__set_scope`` of medspaCy 1.3.1, with ``max_scope`` counted in words.

    medspaCy counts tokens, so quotes, brackets and the hyphens of compounds used up a
    rule's reach: "Her mother "shrank 4 inches" and had crush fractures" kept the
    fractures out of the six of "mother", as did "sister recently diagnosed with
    pregnancy-associated osteoporosis and vertebral fractures". Quotes, a compound's
    hyphens, a date's separators and white space of its own (a hard wrap's line break) no
    longer count; brackets, commas and the rest still do (an aside in brackets ends a reach
    as often as it carries one). The scope still ends with the sentence, and a forward one
    from inside brackets with them (:func:`_end_at_closing_bracket`).
    """
    _medspacy_set_scope(self, doc)
    _count_words(self, doc)
    _end_at_closing_bracket(self, doc)


def _count_words(self, doc: Doc) -> None:
    """Widen a ``max_scope`` medspaCy counted in tokens to as many words (see :func:`_words_scope`)."""
    limit = self.rule.max_scope
    if not limit or self._scope_end <= self._scope_start:
        return
    last = doc[self._scope_end - 1]
    if _UNCOUNTED.search(doc_text(doc), doc[self._scope_start].idx, last.idx + len(last)) is None:
        return  # nothing uncounted in medspaCy's window: the same scope (most modifiers)
    sentence_start, sentence_end = sentence_of(doc, sentence_token_starts(doc), self._start)  # not Span.sent
    direction = self.direction.lower()
    if direction in ("forward", "bidirectional"):
        index, words = self._end, 0
        while index < sentence_end and words < limit:
            words += not _uncounted(doc[index])
            index += 1
        self._scope_end = max(self._scope_end, index)
    if direction in ("backward", "bidirectional"):
        index, words = self._start, 0
        while index > sentence_start and words < limit:
            index -= 1
            words += not _uncounted(doc[index])
        self._scope_start = min(self._scope_start, index)


def _end_at_closing_bracket(self, doc: Doc) -> None:
    """A forward scope from inside brackets ends with them: "MRI 15/09 (to age / exclude other
    levels): T12 compression fracture with marrow oedema" asks nothing about the fracture. Not
    brackets that qualify the word right after them ("benign (osteoporotic) fracture"). A
    backward scope still reaches out ("UTI (treated)", "L1 fracture (old)")."""
    if self.direction.lower() not in ("forward", "bidirectional") or self._scope_end <= self._end:
        return
    text = doc_text(doc)
    start, last, end = doc[self._start].idx, doc[self._end - 1], doc[self._scope_end - 1]
    brackets = enclosing_brackets(text, start, last.idx + len(last), text.rfind("\n", 0, start) + 1,
                                  end.idx + len(end))
    if brackets is None or _QUALIFIED.match(text, brackets[1] + 1):
        return  # none, or a qualifier before its word: "benign (osteoporotic) fracture"
    closing = brackets[1]
    end = self._end
    while end < self._scope_end and doc[end].idx < closing:
        end += 1
    self._scope_end = end


# A word right after brackets that qualify it ("benign (osteoporotic) fracture"); not a conjunction
_QUALIFIED = re.compile(r" ?(?!(?:and|or|but|with|without|in|at|on|of|to|for)\b)\w")
_medspacy_set_scope = None
_QUOTES = frozenset('"\'“”‘’')
_JOINERS = frozenset("-/.")
_UNCOUNTED = re.compile("[" + re.escape("".join(sorted(_QUOTES))) + r"]|\w-\w|\d[/.]\d|\n|\s\s")  # in a window's text


def _uncounted(token) -> bool:
    """A quote, the hyphen inside a compound ("pregnancy-associated"), the separators inside
    a date ("26/06-01/07/2025" is one word, not nine tokens), or white space of its own (a hard
    wrap's line break: "Finished a 5-day course of\nantibiotics for a bladder infection")."""
    if token.text in _QUOTES or token.is_space:
        return True
    if token.text not in _JOINERS or token.whitespace_ or token.i == 0 or token.nbor(-1).whitespace_:
        return False
    return token.text == "-" or (token.nbor(-1).is_digit and token.i + 1 < len(token.doc) and token.nbor().is_digit)


def mend_context_scopes() -> None:
    """Give ConText's modifiers :func:`_limit_scope` and :func:`_words_scope` (idempotent;
    medspaCy 1.3.1's are replaced)."""
    global _medspacy_set_scope
    from medspacy.context.context_modifier import ConTextModifier

    ConTextModifier.limit_scope = _limit_scope
    if _medspacy_set_scope is None:
        _medspacy_set_scope = ConTextModifier._ConTextModifier__set_scope
        ConTextModifier._ConTextModifier__set_scope = _words_scope


def build_nlp(patterns: list[str | Path] = (), rules: RuleSet | None = None) -> Language:
    """Build the pipeline from the shipped rules plus extra rule folders."""
    register_extensions()
    mend_context_scopes()
    rules = rules or load_rules(list(patterns))
    nlp = clinical_blank()
    # only a tokenizer and rules: spaCy's 1,000,000-character guard is for the parser and NER
    nlp.max_length = 100_000_000
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
    sectionizer.filter_start_lines = MethodType(_filter_start_lines, sectionizer)

    context: ConText = nlp.add_pipe("medspacy_context", config={"rules": None, "span_attrs": None})
    context_rules = []
    for rule in rules.context:
        arguments = medspacy_arguments(rule)
        for key in ("allowed_types", "excluded_types", "terminated_by"):
            if arguments.get(key) is not None:
                arguments[key] = set(arguments[key])
        if arguments.get("pattern") is None:  # "at a higher risk\nof infection" is "risk of"
            arguments["pattern"] = wrap_tolerant_pattern(nlp, arguments["literal"])
        context_rules.append(ConTextRule(**arguments))
    context.add(context_rules)

    nlp.add_pipe("vertebro_attributes", config={"section_implies": rules.section_implies})
    return nlp


def _filter_start_lines(sectionizer: Sectionizer, doc: Doc, matches: list[tuple[int, int, int]]) -> list:
    """``Sectionizer.filter_start_lines`` that also keeps an indented heading.

    A heading pattern matches from its line's start (``^[ \t]*Plan:``), so an
    indented heading's match begins in the white-space token that holds the
    line break ("\n  "), whose predecessor ends no line: medspaCy's test
    refused "\n  Plan: MRI for L1 fracture", and the plan stayed in the section
    before it.
    """
    return [match for match in matches
            if is_start_line(match[1], doc, sectionizer.newline_pattern)
            or (doc[match[1]].is_space and "\n" in doc[match[1]].text)
            or _run_in_heading(doc, match[1], match[2])]


def _run_in_heading(doc: Doc, start: int, end: int) -> bool:
    """A heading run into its line (the run-in rules match after any word and a space), in a report
    whose line breaks an export flattened: after a sentence's end with its capital ("INDICATION:
    back pain. Comparison: None. FINDINGS: ..."), or in capitals after any word ("INDICATION:
    XXXX-year-old with chest pain COMPARISON: None IMPRESSION: ..."). Not "...; findings: ..." or
    "as per findings: ..." in a sentence."""
    if start == 0 or not doc[start].text[:1].isupper():
        return False
    return doc[start - 1].text in (".", ";", "!", "?") or doc[start:end].text.isupper()


def wrap_tolerant_pattern(nlp: Language, phrase: str) -> list[dict] | None:
    """A token pattern for a multi-word phrase that also matches across a hard line wrap.

    Clinical text is wrapped at ~70-80 characters, and spaCy makes a line
    break its own token, so the phrase "low suspicion for" would not match
    "low\nsuspicion for". None for a one-token phrase (the phrase matcher
    handles it).
    """
    words = [token.lower_ for token in nlp.make_doc(phrase) if not token.is_space]
    if len(words) < 2:
        return None
    pattern: list[dict] = []
    for index, word in enumerate(words):
        if index:
            pattern.append({"IS_SPACE": True, "OP": "*"})
        pattern.append({"LOWER": word})
    return pattern


class WrapTolerantMatcher:
    """spaCy's ``Matcher.__call__`` for the patterns of :func:`wrap_tolerant_pattern`, with identical output.

    spaCy's matcher advances every pattern over every token: with ~170
    multi-word modifier phrases that was a fifth of the per-note time on
    radiology reports (there are ~510 now, of every category). Each pattern
    here is ``word (space token)* word ...``, so a match is fixed by its
    first token: the matcher looks up each token's ``LOWER`` among the
    phrases' first words, then steps over the space tokens to compare the
    next words. A match starting at a token is the only one it
    can give (a space token never equals a word), as in spaCy.

    The matches come in spaCy's order: by end token, then start token, then
    the order the patterns were added (spaCy reports a match when its last
    token is reached, and keeps the states of earlier starts and earlier
    patterns first); the one medspaCy output this order could change (which
    of two rules with the same words survives the overlap pruning) stays the
    same. :meth:`covers` says whether a spaCy matcher holds only such patterns.
    """

    def __init__(self, matcher):
        from spacy.attrs import IS_SPACE, LOWER

        self.inner = matcher
        self._lower, self._is_space = LOWER, IS_SPACE
        strings = matcher.vocab.strings
        # first word -> [(following words, pattern order, match id)]
        self._by_first: dict[int, list[tuple[tuple[int, ...], int, int]]] = {}
        for order, (key, patterns) in enumerate(matcher._patterns.items()):
            words = [strings.add(token["LOWER"]) for token in patterns[0][::2]]
            self._by_first.setdefault(words[0], []).append((tuple(words[1:]), order, key))

    @staticmethod
    def covers(matcher) -> bool:
        """Whether every rule of a spaCy ``Matcher`` is one :func:`wrap_tolerant_pattern` pattern.

        Also no callback and no greedy filter (which this matcher does not apply).
        """
        gap = {"IS_SPACE": True, "OP": "*"}
        for key, patterns in matcher._patterns.items():
            if len(patterns) != 1 or matcher._callbacks.get(key) is not None or matcher._filter.get(key):
                return False
            pattern = patterns[0]
            if len(pattern) % 2 != 1 or any(token != gap for token in pattern[1::2]) or any(
                    set(token) != {"LOWER"} or not isinstance(token["LOWER"], str) or not token["LOWER"].strip()
                    for token in pattern[::2]):
                return False
        return True

    @classmethod
    def install(cls, component) -> None:
        """Swap the token matcher inside a medspaCy component (ConText) when it :meth:`covers` it."""
        from ..prefilter import _medspacy_matcher

        matcher = _medspacy_matcher(component)
        matcher = getattr(matcher, "inner", matcher)  # under a TargetSentenceMatcher
        attribute = "_MedspacyMatcher__matcher"
        token_matcher = getattr(matcher, attribute)
        if not isinstance(token_matcher, cls) and cls.covers(token_matcher):
            setattr(matcher, attribute, cls(token_matcher))

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, doc: Doc) -> list[tuple[int, int, int]]:
        if not len(doc) or not self._by_first:
            return []
        by_first = self._by_first
        lowers = doc.to_array(self._lower).tolist()
        firsts = [start for start, lower in enumerate(lowers) if lower in by_first]
        if not firsts:
            return []
        spaces = doc.to_array(self._is_space).tolist()
        size = len(lowers)
        found: list[tuple[int, int, int, int]] = []
        for start in firsts:
            for rest, order, key in by_first[lowers[start]]:
                end = start + 1
                for word in rest:
                    while end < size and spaces[end]:
                        end += 1
                    if end == size or lowers[end] != word:
                        break
                    end += 1
                else:
                    found.append((end, start, order, key))
        found.sort()
        return [(key, start, end) for end, start, _order, key in found]


class Extractor:
    """Runs the pipeline on one text at a time, skipping what has nothing to do.

    ``extractor(text)`` returns the processed ``Doc``; its mentions, with every
    attribute, are in ``doc._.vertebro_mentions`` (a list of dicts).

    The output is that of ``build_nlp(...)(text)``; the speed-ups are:

    * the sectionizer, ConText and the attributes run only on documents with
      a target that becomes a mention (:func:`~pipeline.nlp.attributes.reported_targets`;
      "history of hip fracture" alone gives none, and nothing for them to do);
    * medspaCy's regex matchers take the text once instead of once per rule,
      and the target matcher only runs the rules whose anchors occur in the
      text (:func:`pipeline.prefilter.speed_up_matcher`);
    * ConText's multi-word phrases that tolerate line wraps are matched by
      :class:`WrapTolerantMatcher` instead of spaCy's token matcher;
    * ConText builds modifiers only in the sentences that hold a target, and
      runs once per group of such sentences
      (:class:`~pipeline.nlp.sentences.TargetSentenceMatcher`): the scope of a
      modifier never leaves its sentence, so the others cannot change a result;
    * the target matcher sets ``doc.ents`` once (medspaCy adds the spans one
      by one, rewriting every entity each time);
    * sections are found as medspaCy's sectionizer finds them, without
      writing every token's ``token._.section`` (one ``user_data`` entry per
      token; only ``doc._.sections`` is read, by ``vertebro_attributes``);
    * the pipeline is rebuilt every ``renew_every`` documents or when spaCy's
      string store passes ``max_strings`` entries (spaCy 3.7 has no
      ``memory_zone``): every new token text is interned for good, so a long
      run would otherwise grow without bound.
    """

    def __init__(self, patterns: list[str | Path] = (), rules: RuleSet | None = None, *,
                 renew_every: int = 20_000, max_strings: int = 200_000):
        self.rules = rules or load_rules(list(patterns))
        self.renew_every = renew_every
        self.max_strings = max_strings
        self.renewals = 0
        self._build()

    def _build(self) -> None:
        from ..prefilter import LAB_PATTERNS, speed_up_matcher
        from .sentences import TargetSentenceMatcher, register_context_groups

        self.nlp = build_nlp(rules=self.rules)
        self._documents = 0
        self._base_strings = len(self.nlp.vocab.strings)
        components = dict(self.nlp.pipeline)
        self._gate = speed_up_matcher(
            components["medspacy_target_matcher"], gated=True,
            extra={key: pattern.pattern for key, pattern in LAB_PATTERNS.items()})
        self._lab_keys = set(LAB_PATTERNS)
        speed_up_matcher(components["medspacy_sectionizer"], gated=True)
        speed_up_matcher(components["medspacy_context"], gated=True)
        WrapTolerantMatcher.install(components["medspacy_context"])
        TargetSentenceMatcher.install(components["medspacy_context"])
        register_context_groups()
        self._target_matcher = components["medspacy_target_matcher"]
        self._sectionizer = components["medspacy_sectionizer"]
        self._context = components["medspacy_context"]
        faster = {"medspacy_target_matcher": self._match_targets, "medspacy_sectionizer": self._sectionize,
                  "medspacy_context": self._apply_context}
        always = ("vertebro_sentences", "medspacy_target_matcher", "vertebro_labs")
        self._always = [(name, faster.get(name, proc)) for name, proc in self.nlp.pipeline if name in always]
        self._when_targets = [(name, faster.get(name, proc)) for name, proc in self.nlp.pipeline
                              if name not in always]

    def _match_targets(self, doc: Doc) -> Doc:
        """``TargetMatcher.__call__``, setting ``doc.ents`` once instead of once per span.

        The matcher prunes overlapping matches, so no span is refused, and
        ``doc.ents`` is empty before it: adding the spans one by one (which
        re-reads and re-writes every entity each time) gives the same entities.
        """
        target_matcher = self._target_matcher
        if target_matcher._result_type != "ents" or doc.ents:
            return target_matcher(doc)
        matcher = target_matcher._TargetMatcher__matcher
        strings = self.nlp.vocab.strings
        spans = []
        for rule_id, start, end in matcher(doc):
            rule = matcher.rule_map[strings[rule_id]]
            span = Span(doc, start=start, end=end, label=rule.category)
            span._.target_rule = rule
            if rule.attributes is not None:
                for attribute, value in rule.attributes.items():
                    setattr(span._, attribute, value)
            spans.append(span)
        if spans:
            doc.ents = spans
        return doc

    def _apply_context(self, doc: Doc) -> Doc:
        """ConText, once per group of target sentences (see :meth:`TargetSentenceMatcher.groups`).

        A target and the modifiers that can reach it are in the same group, so
        each target gets the modifiers it would get from one ConText run over
        the whole document, in the same order; the pairwise work of ConText
        (scopes, target x modifier) is done per group instead of for the whole
        document.
        """
        matcher = self._context._ConText__matcher
        groups = matcher.groups(doc)
        try:
            if len(groups) <= 1:
                matcher.preset = groups[0][1] if groups else []
                return self._context(doc)
            for targets, matches in groups:
                if not matches:
                    continue  # no modifier: ConText would change nothing
                doc._.vertebro_context_targets = targets
                matcher.preset = matches
                self._context(doc, targets="vertebro_context_targets")
            doc._.vertebro_context_targets = None
            return doc
        finally:
            matcher.preset = None

    def _sectionize(self, doc: Doc) -> Doc:
        """``Sectionizer.__call__`` for our configuration, less the per-token ``token._.section``."""
        from medspacy.section_detection import Section

        sectionizer = self._sectionizer
        if (sectionizer._parent_sections or sectionizer.require_end_line or sectionizer.max_section_length
                is not None or sectionizer._apply_sentence_boundary or sectionizer.assertion_attributes_mapping):
            return sectionizer(doc)  # a configuration the shortcut does not cover
        matcher = sectionizer._Sectionizer__matcher
        matches = matcher(doc)
        if sectionizer.require_start_line:
            matches = sectionizer.filter_start_lines(doc, matches)
        doc._.sections = []
        if not matches:
            doc._.sections.append(Section(None, 0, 0, 0, len(doc)))
            return doc
        if matches[0][1] != 0:
            doc._.sections.append(Section(None, 0, 0, 0, matches[0][1]))
        strings = self.nlp.vocab.strings
        for index, (match_id, start, end) in enumerate(matches):
            rule = matcher.rule_map[strings[match_id]]
            if index == len(matches) - 1:
                body_end = len(doc) if rule.max_scope is None else min(end + rule.max_scope, len(doc))
            else:
                next_start = matches[index + 1][1]
                body_end = next_start if rule.max_scope is None else min(end + rule.max_scope, next_start)
            doc._.sections.append(Section(rule.category, start, end, end, body_end, None, rule))
        return doc

    def _renew_if_due(self) -> None:
        self._documents += 1
        if self._documents >= self.renew_every or \
                len(self.nlp.vocab.strings) - self._base_strings > self.max_strings:
            self.renewals += 1
            self._build()

    def __call__(self, text: str, title: str = "", date=None) -> Doc:
        from .sentences import DOC_TEXT

        self._renew_if_due()
        doc = self.nlp.make_doc(text)
        doc.user_data[DOC_TEXT] = text
        mark_note(doc, text, title, date)
        for name, proc in self._always:
            if name == "vertebro_labs" and self._lab_keys.isdisjoint(self._gate.scan(text)):
                continue  # no lab anchor: no lab value to find
            doc = proc(doc)
        if doc.ents and reported_targets(doc):
            for _name, proc in self._when_targets:
                doc = proc(doc)
        if doc._.vertebro_mentions is None:
            doc._.vertebro_mentions = []
        return doc

    def mentions(self, text: str, title: str = "", date=None) -> list[dict]:
        return self(text, title, date)._.vertebro_mentions



SPINE_NOTE = re.compile(
    r"\b(?:spine|spinal|[CTL]-?spine|lumbar|thoracic\s+(?:spine|vertebra)|cervical\s+spine|thoracolumbar|"
    r"lumbosacral|sacrum|vertebra\w*|kyphoplasty|vertebroplasty|myelogra\w*|DEXA|DXA|bone\s+scan|"
    r"bone\s+densit\w*|whole\s+body|skeletal\s+survey)\b",
    re.IGNORECASE,
)


def is_spine_note(text: str, title: str = "") -> bool:
    """A report about the spine: a bare "no acute fracture" in it is about the vertebrae."""
    return bool(SPINE_NOTE.search(title or "") or SPINE_NOTE.search(text[:300]))


IMAGING_REPORT = re.compile(
    r"\b(?:MRI|MR|CT|XR|CXR|x-?rays?|radiographs?|films?|DEXA|DXA|bone\s+(?:scan|densitometry)|scintigra\w*|"
    r"nuclear\s+medicine|SPECT|PET|fluoroscop\w*|myelogra\w*|ultrasound|sonograph\w*|imaging)\b",
    re.IGNORECASE,
)


def is_imaging_report(text: str, title: str = "") -> bool:
    """The report of an imaging study: its title says so (without a title, its first line).

    Its indication asks a question ("HISTORY: back pain, fracture"); a clinical
    note's HISTORY: or INDICATIONS: states what the patient has.
    """
    head = title.strip() if isinstance(title, str) else ""
    return bool(IMAGING_REPORT.search(head or text[:400].lstrip()[:200].split("\n", 1)[0]))


# The record of a procedure done ("IR PROCEDURE NOTE", "Operative report", "Post-procedure
# note"), not a note before one ("PRE-PROCEDURE CHECKLIST", "Procedure request").
PROCEDURE_NOTE = re.compile(
    r"\b(?:procedure|operative|operation|op)\s+(?:note|report|record)\b|\bpost[- ]?(?:procedure|procedural|op)\b",
    re.IGNORECASE)
_BEFORE_PROCEDURE = re.compile(
    r"\bpre[- ]?(?:procedure|procedural|op|operative|assessment)\b|\brequest|\bchecklist|\bconsent|\bbooking|"
    r"\breferral|\bplanning|\bcancell?ation",
    re.IGNORECASE)


# Headings only the record of a procedure done has ("POST-OP DIAGNOSIS:", "OPERATION
# PERFORMED:", "BLOOD LOSS:"), for a note whose title does not say what it is.
_PROCEDURE_RECORD = re.compile(
    r"(?im)^[ \t]*(?:post[- ]?(?:op|operative|procedure|procedural)\s+diagnos[ie]s|"
    r"(?:operations?|procedures?)\s+performed|(?:estimated\s+)?blood\s+loss|EBL|"
    r"description\s+of\s+(?:the\s+)?(?:procedure|operation))[ \t]*:")


def is_procedure_note(title: str = "", text: str = "") -> bool:
    """The record of a procedure that was done: its title says so, or (a title that does not
    say it comes before one) its headings do."""
    head = title.strip() if isinstance(title, str) else ""
    if _BEFORE_PROCEDURE.search(head):
        return False
    return bool(PROCEDURE_NOTE.search(head) or _PROCEDURE_RECORD.search(text))


def mark_note(doc: Doc, text: str, title: str = "", date=None) -> None:
    """Set what the rules read about the whole note: ``spine_note``, ``imaging_report`` and
    ``procedure_note``; and its date as given (read by :func:`~pipeline.nlp.attributes.note_date`
    only where a finding names a date)."""
    doc._.spine_note = is_spine_note(text, title)
    doc._.imaging_report = is_imaging_report(text, title)
    doc._.procedure_note = is_procedure_note(title, text)
    doc.user_data[NOTE_DATE] = date
