"""A fast sentence splitter for clinical text.

medspaCy's PyRuSH is accurate but ~25× slower than the rest of the pipeline.
Clinical text has a few habits a plain sentencizer gets wrong, handled here
with regular expressions over the text (then mapped onto tokens at once):

* headings (``FINDINGS:``, ``IMPRESSION``, ``Labs:``) start a sentence, and
  the text after a heading's colon starts another — unless the heading is
  itself what the list after it means (``Risks:``, ``Return precautions:``),
  or what follows tells the state of the heading's problem (``Pneumonia:
  abx course completed, resolved``, ``Fever: none``): then ConText must see
  both in one sentence;
* list items (``1.``, ``2)``, ``-``, ``*``, ``•``, checklist boxes ``[ ]``,
  ``[x]``, ``[N]``) start a sentence; a box keeps its item's number and a
  dot leader ends nothing (``[N] 1. Retropulsion``, ``infection ..... NONE``);
* a table's row ending in a short value or a yes/no answer ends its sentence, as
  does a row with columns set apart by runs of spaces before another such row;
* a blank line ends a sentence;
* a single line break inside a sentence is a hard wrap, not a boundary —
  unless the line before ends with ``.``, ``!``, ``?`` or ``:``, or the next
  line is a heading, a list item or a row labelled by its level (``L2:``);
* ``.`` ends a sentence only before white space and a capital or digit, and
  not after an abbreviation (``Dr.``, ``approx.``, ``e.g.``, ``vs.``) or in a
  number (``2.4``); a ``?`` written before its word (``? UTI``) ends nothing.
"""


import bisect
import re

import numpy
from spacy.attrs import IDX, SENT_START
from spacy.language import Language
from spacy.tokens import Doc

ABBREVIATIONS = {
    "dr", "mr", "mrs", "ms", "prof", "approx", "appr", "e.g", "i.e", "eg", "ie", "vs", "etc",
    "st", "no", "fig", "pt", "pts", "hx", "dx", "tx", "sx", "fx", "yr", "yrs", "wk", "wks",
    "mo", "mos", "min", "max", "ca", "cf", "incl", "resp", "a.m", "p.m", "b.i.d",
    "t.i.d", "q.d", "p.o", "i.v", "b.d", "t.d.s", "q.i.d", "mg", "mcg", "ml", "sig",
    "dept", "assoc", "est", "sr", "jr",
}

# Abbreviations whose full stop never ends a clause: "approx. 30% height loss", "risks incl.\ncement
# leak, infection". Not the abbreviations above that end clauses as words do ("failed PT.", "neg
# for fx.", "breast ca.").
MID_CLAUSE_ABBREVIATIONS = frozenset({"approx", "appr", "e.g", "i.e", "eg", "ie", "vs", "incl", "resp", "cf",
                                      "dr", "mr", "mrs", "ms", "prof", "fig"})

#: ``doc.user_data`` key under which :class:`~pipeline.nlp.pipeline.Extractor` keeps the
#: text it made the doc from: ``Doc.text`` joins every token in Python on each call.
DOC_TEXT = "vertebro.text"


def doc_text(doc: Doc) -> str:
    """``doc.text``, without rebuilding it when the Extractor left it in ``doc.user_data``."""
    text = doc.user_data.get(DOC_TEXT)
    return text if text is not None else doc.text


# What follows "No." when it means number ("No. 4411", "No. #2", "No. of levels", "(No.)"),
# not the answer "no" ("Fever: No. Acute L1 fracture.")
_NUMBER_AFTER = re.compile(r"\s*(?:#\s*)?\d|\s*of\b|\s*\)", re.IGNORECASE)

HEADING = r"[A-Z][A-Za-z/&()\- ]{1,40}:"
# "-Hep C, never treated\n-Infectious endocarditis in her 20s": a dash and a capital start an item too
LIST_ITEM = r"(?:\d{1,2}[.)]\s|[-*•▪]\s|-(?=[A-Z])|\[(?:[ \t_xX✓✔*]?|[YyNn]|[Yy]es|YES|[Nn]o|NO)\]|[☐☒☑])"
_BLANK_LINE = re.compile(r"\n[ \t]*\n\s*")
_LINE_BREAK = re.compile(r"\n[ \t]*(?=\S)")
# (a row labelled by its level: "L1: excluded - cement" over "L2: excluded - fracture" over "L3-L4: BMD 0.842")
_LEVEL_LABEL = r"(?:Th|[CTLS])\d{1,2}(?:[ \t]*[-/–][ \t]*(?:Th|[CTLS])?\d{1,2})?[ \t]*:"
_NEXT_STARTS_BLOCK = re.compile(rf"(?:{HEADING}|{LIST_ITEM}|{_LEVEL_LABEL}|[A-Z][A-Z /&]{{2,40}}\s*$)", re.MULTILINE)
_ENDS = frozenset(".!?:")
# A line ends its sentence after a full stop or colon, as a heading in capitals, or as a table's
# row whose last column is a short value or a yes/no answer with its remark ("Location (T3-T10,
# rigid)       1", "Posterior wall intact    Y", "fracture level     NO - see note"): the next
# row is not the same sentence. Not a sentence's first words after the two spaces a typist puts
# after a full stop ("25% height loss.  No\nretropulsion.").
_PREVIOUS_ENDS = re.compile(r"(?:[.!?:]|^[A-Z][A-Z /&()]{2,40}|[^\s.!?;,][ \t]{2,}\S{1,8}|"
                            r"[^\s.!?;,][ \t]{3,}(?i:yes|no|n/a|none)\b[^\n(]{0,40})[ \t]*$")
_HEADING_AT_LINE_START = re.compile(rf"(?m)^[ \t]*(?P<heading>{HEADING})[ \t]*(?=\S)")
# Headings that make what follows them hypothetical ("Risks: bleeding, infection", "Risks of (c)
# explained to all present: cement leakage, bleeding, infection"), or not the
# patient's ("Allergies: heparin (HIT)": ConText's "allergic to" reaches the list).
_CUE_HEADING = re.compile(
    r"(?:allerg(?:y|ies)(?:[ \t]*(?:/|and)[ \t]*(?:adverse[ \t]+)?(?:drug[ \t]+)?(?:reactions?|intolerances?))?|"
    r"(?:discussed\s+|explained\s+)?risks(?:\s+of\s+(?:\([^()\n]{1,20}\)|(?:the\s+)?[\w-]+))?"
    r"(?:\s+(?:(?:discussed|explained|reviewed)\b[^:\n]{0,30}|include|"
    r"and\s+benefits(?:\s+discussed\b[^:\n]{0,30})?))?|"
    r"(?:return\s+)?precautions(?:\s+(?:given|discussed|reviewed|explained)\b[^:\n]{0,30})?|"
    r"complications\s+discussed|side\s+effects|"
    r"warning\s+signs|red\s+flags|safety[- ]net(?:ting)?(?:\s+advice)?|"
    r"(?:advised|advice|educated|education|counsell?ed)\s+(?:re|regarding|about|on)|consent\w*\b[^:\n]{0,40})\s*:",
    re.IGNORECASE)
# What a problem heading's text starts with when it tells the problem's state ("Pneumonia: abx
# course completed, resolved", "UTI: treated", "Fever: none", "Fever: [ ] yes [x] no", "ESCC:
# Bilsky 0", "Wound infection: uninfected"), or a course's end a few words on ("UTI: trimethoprim
# course completed 14/11"): heading and state stay one sentence, so that ConText reads the state
# onto the problem.
# A checklist box, ticked, answered or empty: "[ ]", "[x]", "[N]", "☐"
_BOX = r"(?:\[[^\]\n]{0,3}\]|[☐☒☑])"
_STATE_AFTER_HEADING = re.compile(
    r"[ \t]*(?:(?:resolv\w*|treated|complete[ds]?|improv\w*|ongoing|on\s+(?:iv\s+|oral\s+|po\s+)?"
    r"(?:abx|antibiotics)|abx|antibiotics|s/p|none|nil|negative|neg|absent|present|cleared|corrected|uninfected|"
    rf"reversed|bilsky\s*(?:grade\s*)?0)\b|{_BOX}"
    r"|(?:[A-Za-z][\w/.-]*[ \t]+){1,3}?(?:completed|finished|resolved|treated)\b)",
    re.IGNORECASE)
# A checklist box and its item's number: "[N] 1. Retropulsion on CT or MRI" is one sentence, so
# that the box's answer reaches its item.
_BOX_AND_NUMBER = re.compile(rf"[ \t]*{_BOX}[ \t]*\d{{1,2}}")
# A line that heads a list of what may happen, ending in a colon or a comma: "Risks discussed:",
# "Potential complications include but are not limited to,", "Call us if you develop:". Its
# list's items stay its sentence, so that ConText reads the head's cue onto them ("- infection").
# Not a list of what did happen ("Complications:", "Postnatal complications:"), nor "Risk
# factors:" (the patient's).
_LIST_HEAD = re.compile(
    r"(?:\brisks\b(?![ \t]+factors)|\bside[- ]effects\b|\b(?:potential|possible)[ \t]+(?:\w+[ \t]+)?complications\b|"
    r"\bcomplications\b[^\n]*\b(?:include|includes|including|such[ \t]+as|limited[ \t]+to)\b|"
    r"\b(?:call|return|seek|contact|come[ \t]+back)\b[^\n]*\bif\b|\bif[ \t]+(?:you|he|she|they)\b)"
    r"[^\n]*[:,][ \t]*$",
    re.IGNORECASE)
_LIST_LINE = re.compile(rf"[ \t]*{LIST_ITEM}")
# Two lines with columns set apart by runs of spaces are two rows of a table, not one sentence:
# "L1 vertebral body     7.8   lytic lesion, pathological compression fracture" and the next row,
# "T6 vertebral body     5.1   lytic lesion, no collapse".
_COLUMNS = re.compile(r"\S[ \t]{3,}\S")
# (a question written before its word starts one too: "not settling. ?rib # ?vertebral #"; not
# one about the age or the cause of what the sentence before named, a word of its own: "T12 crush
# # on XR. ?acute.", "L4 collapse on XR. ?osteoporotic ?infection", but "No deficit. ?pathological
# fracture")
_TERMINAL = re.compile(r"(?P<mark>[.!?]+)[)\"']*\s+(?=[A-Z0-9(\"'\[]|\?(?!(?i:acute|new|old|recent|chronic|subacute|"
                       r"fresh|healing|healed|age|osteoporotic|op|insufficiency|traumatic|pathological|malignant|"
                       r"benign|stable|unstable|other\s+levels?|cause|a?etiology)\b[ \t]*(?:[.?,;:/)\n]|$|"
                       r"(?i:vs|or|versus)\b))[A-Za-z])")


def _line_end(text: str, start: int) -> int:
    end = text.find("\n", start)
    return len(text) if end < 0 else end


def previous_word(text: str, end: int) -> str:
    """The word (letters, digits, dots) ending at ``end``, lower case, without its last dot."""
    start = end
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "."):
        start -= 1
    return text[start:end].lower().rstrip(".")


def sentence_starts(text: str) -> list[int]:
    """Character offsets where sentences start (0 always included)."""
    starts = {0}
    for match in _BLANK_LINE.finditer(text):
        starts.add(match.end())
    lists = []
    for match in _LINE_BREAK.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        previous_line = text[line_start:match.start()]
        kept = previous_line.rstrip(" \t")
        last = kept[-1:]
        # a line that ends in "incl." or "e.g." goes on in the next ("risks incl.\ncement leak")
        abbreviated = last == "." and previous_word(text, line_start + len(kept) - 1) in MID_CLAUSE_ABBREVIATIONS
        # _PREVIOUS_ENDS.search(previous_line), its first branch without a regex scan of the line
        if (not abbreviated and (last in _ENDS or _PREVIOUS_ENDS.search(previous_line))) \
                or _NEXT_STARTS_BLOCK.match(text, match.end()) \
                or (_COLUMNS.search(previous_line) and _COLUMNS.search(text, match.end(), _line_end(text, match.end()))):
            starts.add(match.end())
        if last and last in ":," and _LIST_LINE.match(text, match.start() + 1) \
                and _LIST_HEAD.search(previous_line):
            lists.append((match.start(), _list_end(text, match.start() + 1)))
    for match in _HEADING_AT_LINE_START.finditer(text):
        starts.add(match.start("heading"))
        if not (_CUE_HEADING.fullmatch(match.group("heading"))
                or _STATE_AFTER_HEADING.match(text, match.end())):
            starts.add(match.end())
    for match in _TERMINAL.finditer(text):
        mark = match.group("mark")
        if mark.startswith("?") and (match.start() == 0 or text[match.start() - 1].isspace()):
            continue  # "? UTI": a question mark before its word asks about it, it ends nothing
        if len(mark) > 3 and not mark.strip("."):
            continue  # a dot leader: "- active infection ........ NONE" answers its item
        if mark == ".":
            word = previous_word(text, match.start())
            if word in ABBREVIATIONS and (word != "no" or _NUMBER_AFTER.match(text, match.end())):
                continue  # "No." is the number's only before one: "No. 4411", "No. of levels"
            if word.isdigit() and _BOX_AND_NUMBER.fullmatch(
                    text, text.rfind("\n", 0, match.start()) + 1, match.start()):
                continue
            if match.start() > 0 and len(word) == 1 \
                    and text[match.start() - 1].isupper() and not text[match.start() - 1].isdigit():
                continue  # an initial: "J. Smith"
        starts.add(match.end())
    if lists:
        starts = {start for start in starts if not any(head < start < end for head, end in lists)}
        starts.update(end for _, end in lists if end < len(text))
    return sorted(starts)


def _list_end(text: str, start: int) -> int:
    """Where the list whose first item's line starts at ``start`` ends: at the first line that
    is neither an item nor an indented continuation of one (or at a blank line)."""
    end = start
    while end < len(text):
        line_end = _line_end(text, end)
        line = text[end:line_end]
        if not line.strip() or not (_LIST_LINE.match(line) or line[:1] in " \t"):
            return end
        end = line_end + 1
    return len(text)


@Language.factory("vertebro_sentences")
def make_sentence_splitter(nlp: Language, name: str):
    return ClinicalSentenceSplitter()


class ClinicalSentenceSplitter:
    """Sets ``Token.is_sent_start`` for every token from :func:`sentence_starts`."""

    def __call__(self, doc: Doc) -> Doc:
        if not len(doc):
            return doc
        token_starts = doc.to_array(IDX).astype(numpy.int64)
        boundaries = numpy.asarray(sentence_starts(doc_text(doc)), dtype=numpy.int64)
        # a boundary inside white space starts the next token
        first_token = numpy.searchsorted(token_starts, boundaries, side="left")
        flags = numpy.full(len(doc), -1, dtype=numpy.int32)
        flags[numpy.unique(first_token[first_token < len(doc)])] = 1
        flags[0] = 1
        doc.from_array([SENT_START], flags.reshape(-1, 1).astype("uint64"))
        doc.user_data[SENTENCE_STARTS] = numpy.flatnonzero(flags == 1).tolist()
        return doc


#: ``doc.user_data`` key under which :class:`ClinicalSentenceSplitter` leaves the token
#: indices where its sentences start (nothing later in the pipeline moves them).
SENTENCE_STARTS = "vertebro.sentence_starts"


def sentence_token_starts(doc: Doc) -> list[int]:
    """Sorted token indices of the sentence starts, 0 first (from ``Token.is_sent_start``)."""
    starts = doc.user_data.get(SENTENCE_STARTS)
    if starts is None:
        starts = numpy.flatnonzero(doc.to_array(SENT_START) == 1).tolist()
        if not starts or starts[0] != 0:
            starts.insert(0, 0)
    return starts


def sentence_of(doc: Doc, starts: list[int], span_start: int) -> tuple[int, int]:
    """Token bounds of ``Span.sent`` for a span starting at ``span_start``, from
    :func:`sentence_token_starts`: the sentence of its first token (spaCy's too,
    also for a span that crosses a sentence boundary)."""
    index = bisect.bisect_right(starts, span_start)
    return starts[index - 1], starts[index] if index < len(starts) else len(doc)


def register_context_groups() -> None:
    """The Doc extension :meth:`TargetSentenceMatcher.groups` hands ConText its targets in."""
    if not Doc.has_extension("vertebro_context_targets"):
        Doc.set_extension("vertebro_context_targets", default=None)


class TargetSentenceMatcher:
    """ConText's matcher, keeping only the modifiers that touch a sentence with a target.

    ConText gives a modifier the scope of the sentence its first token is in
    (``max_scope`` only shortens it), and two modifiers only interact when
    their scopes overlap. A modifier that does not touch any sentence holding
    a target (``doc.ents``) can therefore neither modify a target nor change
    the scope of a modifier that does: dropping it leaves every result as it
    was, and saves building it (``Token.sent``) and ConText's pairwise scope
    updates, which grow with the square of the number of modifiers.
    A modifier that runs across a sentence boundary into a target sentence is
    kept (a forward modifier's scope then starts past its sentence's end and
    can shorten the scope of a modifier in the next sentence).

    :meth:`groups` splits the target sentences into groups that no modifier
    links, so that ConText can run on each separately; ``preset`` makes the
    next call return the given matches.
    """

    attribute = "_ConText__matcher"

    def __init__(self, inner):
        self.inner = inner
        self.preset: list[tuple[int, int, int]] | None = None

    @classmethod
    def install(cls, context) -> None:
        matcher = getattr(context, cls.attribute)
        if not isinstance(matcher, cls):
            setattr(context, cls.attribute, cls(matcher))

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, doc: Doc) -> list[tuple[int, int, int]]:
        if self.preset is not None:
            return self.preset
        matches = self.inner(doc)
        if not matches:
            return matches
        ranges = target_sentence_ranges(doc)
        starts = [start for start, _ in ranges]
        return [match for match in matches if _touched(ranges, starts, match[1], match[2])]

    def groups(self, doc: Doc) -> list[tuple[list, list[tuple[int, int, int]]]]:
        """``(targets, matches)`` per group of target sentences that no modifier match links.

        Sentences holding targets form ranges (adjacent ones merged); a match
        touching two ranges joins them; matches touching none are dropped.
        """
        ents = list(doc.ents)
        if not ents:
            return []
        matches = self.inner(doc)
        ranges = target_sentence_ranges(doc)
        starts = [start for start, _ in ranges]
        parent = list(range(len(ranges)))

        def root(k: int) -> int:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        kept = []
        for match in matches:
            touched = _touched(ranges, starts, match[1], match[2])
            if touched:
                kept.append((match, touched[0]))
                for other in touched[1:]:
                    parent[root(other)] = root(touched[0])
        by_group: dict[int, tuple[list, list]] = {}
        for ent in sorted(ents, key=lambda span: span.start):
            k = bisect.bisect_right(starts, ent.start) - 1
            by_group.setdefault(root(k), ([], []))[0].append(ent)
        for match, k in kept:
            by_group.setdefault(root(k), ([], []))[1].append(match)
        return [group for group in by_group.values() if group[0]]


def _touched(ranges: list[tuple[int, int]], starts: list[int], start: int, end: int) -> list[int]:
    """Indices of the (sorted, disjoint) token ranges that the span [start, end) overlaps."""
    last = bisect.bisect_left(starts, end) - 1
    found = []
    k = last
    while k >= 0 and ranges[k][1] > start:
        found.append(k)
        k -= 1
    found.reverse()
    return found


def target_sentence_ranges(doc: Doc) -> list[tuple[int, int]]:
    """Merged token ranges of the sentences that a span of ``doc.ents`` overlaps."""
    sentence_starts = sentence_token_starts(doc)
    bounds = sentence_starts + [len(doc)]
    ranges: list[tuple[int, int]] = []
    for ent in sorted(doc.ents, key=lambda span: span.start):
        first = bisect.bisect_right(sentence_starts, ent.start) - 1
        last = bisect.bisect_right(sentence_starts, max(ent.end - 1, ent.start)) - 1
        start, end = bounds[first], bounds[last + 1]
        if ranges and start <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
        else:
            ranges.append((start, end))
    return ranges
