"""Turn matched spans and their ConText modifiers into mentions.

This is vertebro's own component (``vertebro_attributes``). For every target
span it decides:

* the section (normalised; a section may imply attributes, e.g. a past
  medical history makes a mention historical, a family history makes it
  family, an indication makes a finding uncertain: "rule out fracture");
* ``negated``, ``uncertain``, ``historical``, ``hypothetical``, ``family``
  from ConText's modifier categories;
* ``acuity`` from the nearest acuity modifier ("age-indeterminate" beats
  the others: it says the age is not known), ``new`` ("new", "interval");
  a fracture of no age then takes one written apart from it
  (:func:`place_ages`);
* ``aetiology``, ``scope`` (infection), ``corrected`` and ``med_status``;
* the vertebral ``levels`` linked in its sentence (:mod:`.levels`);
* whether a generic "fracture" or "marrow oedema" is vertebral at all: a
  rib or hip fracture is not a FRACTURE mention.

The result is ``doc._.vertebro_mentions``: a list of plain dicts.
"""


import datetime as _dt
import re

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.tokens.underscore import Underscore

from .labs import DAY, MONTH_WORD, MONTHS, before_either_way, day_readings, earlier_month
from .levels import (CLAUSE_BREAK, POSTERIOR_ELEMENT as _POSTERIOR_ELEMENT, enclosing_brackets, find_level_groups,
                     icd_pair_levels, link_levels, sort_levels)
from .sentences import LIST_ITEM, doc_text, sentence_of, sentence_token_starts

LEVELLED = {"FRACTURE", "OEDEMA", "RETROPULSION", "EPIDURAL_DISEASE", "INFECTION",
            "MALIGNANCY", "PRIOR_AUGMENTATION"}
ACUITY = {"INDETERMINATE_AGE": "indeterminate", "ACUTE": "acute", "SUBACUTE": "subacute",
          "HEALED": "healed", "CHRONIC": "chronic"}
CORRECTABLE = ("COAGULOPATHY", "INFECTION", "ANTICOAGULANT")  # carry ``corrected``
FLAGS = {"NEGATED_EXISTENCE": "negated", "POSSIBLE_EXISTENCE": "uncertain",
         "HISTORICAL": "historical", "HYPOTHETICAL": "hypothetical", "FAMILY": "family"}

VERTEBRAL_CUE = re.compile(
    r"vertebra|vertebral|spine|spinal|\bspinous|lumbar|thoracic|cervical|sacral|sacrum|coccy|"
    r"thoracolumbar|lumbosacral|endplate|end plate|\bVB\b|body height|kyphoplast|vertebroplast",
    re.IGNORECASE,
)
_NON_VERTEBRAL_WORDS = (
    r"(?:rib|ribs|hip|femur|femoral|wrist|radius|radial|ulna|ulnar|humerus|humeral|ankle|"
    r"clavicle|clavicular|pelvis|pelvic|sternum|sternal|scapula|scapular|skull|nasal|tibia|"
    r"tibial|fibula|fibular|finger|toe|hand|foot|feet|acetabul\w*|pubic|ramus|rami|olecranon|"
    r"patella|orbital|orbit|ZMC|zygomaticomaxillary|blow-?out|tripod|tetrapod|septal|mandible|mandibular|"
    r"metacarpal|metatarsal|calcaneus|calcaneal|elbow|knee|"
    r"shoulder|colles|scaphoid|malleol\w*|tooth|teeth|condyle|trochanter\w*|intertrochanteric|"
    r"neck of femur|NOF|facial|zygoma\w*|maxill\w*|phalan\w*|navicular|cuboid|talus|distal|proximal|"
    r"(?:mid-?)?shaft|diaphys\w*|metaphys\w*|epiphys\w*)"
)
NON_VERTEBRAL = re.compile(rf"\b{_NON_VERTEBRAL_WORDS}\b", re.IGNORECASE)
# The bone a fracture is written against ("left 7th-9th rib fractures", "femoral neck
# fracture", "L orbital floor (blowout) fracture"): that bone's, whatever levels its sentence names.
NAMED_BONE_BEFORE = re.compile(rf"\b{_NON_VERTEBRAL_WORDS}(?:\s+[\w-]+)?(?:\s*\([^()\n]{{1,20}}\))?\s*$",
                               re.IGNORECASE)


# "fractures of several ribs": a fracture naming its own site, not a vertebral
# one, is not vertebral even in a spine report
OWN_SITE = re.compile(r"\s+(?:of|involving|through)\s+(?!(?:an?\s+)?(?:indeterminate|indeterminant|uncertain|unknown|"
                      r"undetermined|unclear|age|chronicity|acuity)\b)", re.IGNORECASE)
# A fracture of a vertebra's posterior elements or processes is not a vertebral body
# fracture, the kind vertebral augmentation treats: "transverse process fractures of
# L2 and L3", "laminar fracture at T12", "fracture of the left pedicle of L4", "fractures
# of the left L1, L2 and L3 transverse processes", or said to be one after it: "the fractures
# are of the transverse processes", 'handover sheet reads "L2/L3 #" - these are the transverse
# processes only', "The only fractures on the CT are healed left L2 and L3 transverse process
# fractures"; or that the element is written with, or glossed by in brackets: "stress injury of the
# left L4 pars interarticularis with an incomplete fracture", "a lucent line through the inferior
# half of the pars (incomplete fracture, no sclerosis)".
POSTERIOR_ELEMENT_BEFORE = re.compile(
    rf"\b{_POSTERIOR_ELEMENT}(?:\s*\(\s*(?:[\w-]+\s+){{0,2}}|\s+with\s+(?:an?\s+)?"
    r"(?:(?:small|tiny|subtle|early|incomplete|complete|non-?displaced|undisplaced|minimally\s+displaced|acute|"
    r"stress|hairline|linear|associated)\s+){0,2})?\s*$", re.IGNORECASE)
POSTERIOR_ELEMENT_AFTER = re.compile(
    r"(?:[)\"'\u201d]*\s*(?:(?:-+|,)\s*)?(?:(?:these|this|which|they|it)\s+)?"
    r"(?:(?:on|in)\s+(?:the\s+|this\s+)?(?:CT|MRI|MR|XR|x-?rays?|films?|imaging|radiographs?|scan|study)\s+)?"
    r"(?:(?:are|is|was|were)(?:\s+(?:only|all|both|just))?|(?:refers?|referred|relates?|related)\s+to)\s+|\s+)"
    rf"(?:(?:of|involving|in|at|through)\s+)?(?:the\s+)?(?:tips?\s+of\s+(?:the\s+)?)?"
    rf"(?:(?:left|right|lt|rt|[LR]|bilateral|both|and|healed|old|acute|non-?displaced|undisplaced|"
    rf"(?:Th|[CTLSD])\s?-?\d{{1,2}}(?:[-/](?:Th|[CTLSD])?\d{{1,2}})?),?\s+){{0,6}}"
    rf"{_POSTERIOR_ELEMENT}\b", re.IGNORECASE)
# A side or a level (list) before a process: "R TP", "L2, L3 TP", "left L2-L3 transverse processes"
_SIDE_OR_LEVEL = r"(?:left|right|lt|rt|[LR]|bilateral|both|(?:Th|[CTLSD])\s?-?\d{1,2}(?:[-/,]\s?(?:Th|[CTLSD])?\d{1,2})*)"
# ... or named in a bracket after it: "Diagnosis on claim: Fracture lumbar spine, closed (R TP L2, L3)",
# "# Lumbar fx (L2-L3 TP)"
POSTERIOR_ELEMENT_BRACKETED = re.compile(
    rf"[^.;()\n]{{0,30}}\(\s*(?:{_SIDE_OR_LEVEL}\s+){{0,3}}{_POSTERIOR_ELEMENT}\b", re.IGNORECASE)
# ... or set after it by a dash or a colon, as a coded diagnosis writes its subtype: 'ACC diagnosis
# "Fracture of lumbar vertebra -- transverse process"' (read for every fracture phrase, "vertebral"
# ones too)
POSTERIOR_ELEMENT_SUBTYPE = re.compile(
    rf"[\"'\u201d]?[ \t]*(?:-+|:|\u2013|\u2014)[ \t]*(?:{_SIDE_OR_LEVEL},?\s+){{0,3}}{_POSTERIOR_ELEMENT}\b"
    r"(?!\s+(?:(?:are|is|remain|also)\s+)?(?:intact|normal|spared|preserved|unremarkable|uninvolved|not\b|"
    r"involv|extend|extension))",
    re.IGNORECASE)
# "transverse process fractures with STIR hyperintensity in the fracture sites": the sites of the
# fractures just named
FRACTURE_SITES_AFTER = re.compile(r"[ \t]+sites?\b", re.IGNORECASE)
POSTERIOR_FRACTURE = re.compile(rf"{_POSTERIOR_ELEMENT}\s+(?:fx|fractures?)\b|\bfractures?\s+of\s+(?:the\s+)?"
                                rf"(?:(?:left|right|bilateral|(?:Th|[CTLSD])\d{{1,2}}|and),?\s+){{0,6}}{_POSTERIOR_ELEMENT}",
                                re.IGNORECASE)
# "L4-5: Disc desiccation and mild height loss": the disc's height, named earlier in the phrase
DISC_BEFORE = re.compile(r"\b(?:dis[ck]s?|intervertebral|interspaces?)\b[^.;,:()]{0,30}$", re.IGNORECASE)
# ... or named right after it: "desiccation and loss of height of the discs", "Loss of height of the
# L4-5 disc", "height loss at the L5/S1 interspace"
DISC_AFTER = re.compile(r"\s+(?:of|in|at|involving)\s+(?:the\s+)?(?:(?:lower\s+)?(?:lumbar|thoracic|cervical)\s+)?"
                        r"(?:(?:Th|[CTLS])\d{1,2}(?:\s?[-/]\s?(?:Th|[CTLS])?\d{1,2})?\s+)?(?:intervertebral\s+)?"
                        r"(?:dis[ck]s?|interspaces?|dis[ck]\s+spaces?)\b", re.IGNORECASE)
# A loss of the patient's height, measured in centimetres or inches ("Height loss 4 cm by
# her report", "3 cm height loss, ?vertebral fracture"): a sign to look for fractures, not
# one (a vertebra's height loss is a percentage or millimetres)
_STATURE_UNIT = r"\d+(?:[.,]\d+)?\s*(?:cms?\b|centimet\w*|in\b|inch\w*|\")"
_STATURE_BEFORE = re.compile(rf"{_STATURE_UNIT}\s*(?:of\s+)?$", re.IGNORECASE)
_STATURE_AFTER = re.compile(rf"\s*(?:of\s+|:\s*|\(|~|(?:approx\.?|about|by)\s+)?{_STATURE_UNIT}", re.IGNORECASE)
# A vertebra or its fracture named in a sentence: a height loss there is a vertebra's
_VERTEBRA_NAMED = re.compile(r"vertebra|\bbod(?:y|ies)\b|end\s?plate|\bVB\b|fractur|\bfx|#|compression|wedg|collaps",
                             re.IGNORECASE)
# A part of a vertebra: "fracture through the pedicles" (its own site, but a vertebra's)
VERTEBRAL_PART = re.compile(rf"\b(?:{_POSTERIOR_ELEMENT}|transverse)\b", re.IGNORECASE)


#: The span extensions :meth:`MentionAttributes._mentions` reads, in the order of :func:`_extension_values`.
MENTION_EXTENSIONS = ("modifiers", "rule_historical", "rule_negated", "rule_acuity", "rule_aetiology",
                      "rule_scope", "rule_also", "rule_labs")


def _extension_values(span: Span, names) -> list:
    """``[getattr(span._, name) for name in names]``, at a fraction of the cost.

    Each ``span._`` builds an ``Underscore`` and each read goes through its
    ``__getattr__``: a mention reads eight extensions, which made these reads
    a quarter of this component's time. A plain extension (a default, no
    getter or method) is read from ``doc.user_data`` under spaCy's own key;
    any other goes through ``getattr`` as before.
    """
    underscore = span._
    extensions = underscore._extensions
    user_data = span.doc.user_data
    values = []
    for name in names:
        default, method, getter, _setter = extensions[name]
        if method is None and getter is None and not isinstance(default, Underscore.mutable_types):
            values.append(user_data.get(underscore._get_key(name), default))
        else:
            values.append(getattr(underscore, name))
    return values


def _section_before(sections, section):
    """The section whose heading comes last before ``section``'s, or None."""
    previous = [other for other in sections if other.title_start < section.title_start]
    return max(previous, key=lambda other: other.title_start) if previous else None


def _section_at(sections, token_index: int):
    """The section a token is in (its title or its body), or None."""
    for section in sections:
        if section.body_start <= token_index < section.body_end or \
                section.title_start <= token_index < section.title_end:
            return section
    return None


# The end of a paragraph that has begun: text, then a blank line.
_PARAGRAPH_END = re.compile(r"\S[^\n]*\n[ \t]*\n")
# One that a list does not go on after ("End-stage renal disease\n\na. numerous urinary tract
# infections\n\nb. haemodialysis (1983-1988)"): a section's paragraph ends there; and at a line
# that heads an imaging report quoted below it ("Background: 79F, AF, osteoporosis, GLF 3/11.
# MRI done today.\nMRI T/L spine w/o (final, 3/13):\n  \"Acute L1 ...\""): the report is the note's own
_REPORT_HEADING_LINE = r"\n[ \t]*(?i:MRI|MR|CT|XR|X-?rays?|radiographs?|bone\s+scan|PET(?:[-/]CT)?)\b[^\n]{0,80}:[ \t]*\n"
_PARAGRAPH_BREAK = re.compile(rf"{_PARAGRAPH_END.pattern}(?![ \t\n]*(?:[a-z]\.\s|{LIST_ITEM}))|{_REPORT_HEADING_LINE}")


# PRIOR_AUGMENTATION names a procedure that was done ("prior L2 kyphoplasty", "cement in
# L1"); one named with no sign of that is planned or discussed ("eval for kyphoplasty",
# "Suitable for vertebroplasty", "Procedure: L1 kyphoplasty" before it): hypothetical.
# The signs: the mention is the cement or the aftermath ("kyphoplasty cement",
# "post-kyphoplasty changes"); a word before it says it happened ("s/p", "prior", "after",
# "underwent", "treated with"); a word or a date with its year after it ("L2 vertebroplasty
# done", "L1 vertebroplasty intact", "T9 vertebroplasty 2021", "kyphoplasty in March 2024"),
# or an earlier year than the note's at the end of a bracket after it (below); or the note
# records the procedure.
_DONE_IN_MENTION = re.compile(r"cement|pmma|\bpost|augmented", re.IGNORECASE)
_DONE_BEFORE = re.compile(
    r"(?:\bpost[- ]?|\bs/p\s*|\bstatus\s+post\s+|\bafter\s+|\bfollowing\s+|\bsince\s+|\bprior\s+|"
    r"\bprevious(?:ly)?\s+|\bhad\s+|\bunderwent\s+|\btreated\s+(?:with|by)\s+|\bh/o\s+|\bhx\s+(?:of\s+)?|"
    r"\bhistory\s+of\s+|\bold\s+|\bremote\s+|\blevels?\s+of\s+)(?:[\w/&,()-]+\s+){0,4}$",
    re.IGNORECASE)
_MONTH = rf"(?:{'|'.join(MONTHS)})[a-z]*\.?"
# A date with its year: "2021", "March 2024", "03/2021", "12/03/2021", "2021-03-12", "30-JAN-2025";
# not a range
_DATE = rf"(?:(?:\d{{1,2}}[- ])?{_MONTH}[- ]+)?(?:\d{{1,2}}[/.-]){{0,2}}(?:19|20)\d\d(?:-\d{{1,2}}-\d{{1,2}})?\b(?![/.-]?\d)"
# A date that dates a finding: not a dose ("Vancomycin 2000 mg")
_FINDING_DATE = rf"(?P<date>{_DATE})(?!\s*(?:mg|mcg|units?|iu|ml|cc)\b)"
_DONE_AFTER = re.compile(
    r"[\s,;:(-]*(?:(?:at|of)\s+)?(?:(?:Th|[CTLS])\s?-?\d{1,2}\b[\s,;:(-]*)?(?:___\s+)?"
    r"(?:(?:was\s+|were\s+|is\s+|are\s+)?(?:done|performed|completed|uncomplicated|successful|intact|in\s+situ|"
    rf"in\s+place|stable|unchanged|level|site|changes)\b|(?:in\s+|on\s+)?{_DATE})",
    re.IGNORECASE)
# A bracket after the procedure that ends in the year it was done, after where or by whom:
# "L1 vertebroplasty (Clydeview Spinal Unit, 2021)". Not a booking or a policy's revision
# ("(booked 04/03/2025)", "(rev 10/2024)": digits before the year, or a word of planning).
_DONE_YEAR_BRACKET = re.compile(
    r"[ \t]*\((?![^()\n]*\b(?:booked|planned|proposed|scheduled|listed|provisional\w*|rev\w*|version|polic\w*|"
    rf"due|awaiting|pending|for)\b)[^()\d\n]{{0,40}}?(?:{_MONTH}[ \t]+)?(?P<year>(?:19|20)\d\d)[ \t]*\)",
    re.IGNORECASE)


def _planned_augmentation(span: Span, sentence: Span, text: str) -> bool:
    """Whether a PRIOR_AUGMENTATION span shows no sign of a procedure done (see above)."""
    if span.doc._.procedure_note or _DONE_IN_MENTION.search(span.text):
        return False
    before = text[max(sentence.start_char, span.start_char - 80):span.start_char]
    reach = min(sentence.end_char, span.end_char + 60)
    if _DONE_BEFORE.search(before) is not None or _DONE_AFTER.match(text, span.end_char, reach) is not None:
        return False
    bracket = _DONE_YEAR_BRACKET.match(text, span.end_char, reach)
    if bracket is None:
        return True
    noted = note_date(span.doc)
    return noted is None or int(bracket["year"]) >= noted.year


def affirmed(mention: dict) -> bool:
    """Not negated, uncertain, hypothetical or about a family member."""
    return not (mention["negated"] or mention["uncertain"] or mention["hypothetical"] or mention["family"])


# A checklist item answered N right after it, with a colon or without: "Pre-procedure checklist:
# coagulopathy N, active infection N, fever N", "E2 ... prevalent vertebral fractures: N (central
# read 17-JUN: no prevalent fracture)", "Active infection (local or systemic)     N" (a bracket
# may come between; a capital N before a comma, a stop, a bracket or the line's end), or before
# the run of spaces that sets the next item of a row apart ("Checklist: Fever N   Cough N   Urinary
# symptoms N"), also after the word for its symptoms ("UTI sx N"). Read at each mention's end: as
# a ConText rule its anchor, a word ending in "n", was in every note.
_ANSWERED_N = re.compile(r"(?:[ \t]+(?:sx|symptoms|signs))?(?:[ \t]*\([^()\n]{1,40}\))?(?:[ \t]*:)?[ \t]+N"
                         r"(?=[ \t]*[;,.\n]|[ \t]*$|[ \t]+\(|[ \t]{2,}\S)")


# Someone else by name, as the subject of the clause a mention is in: "Bernard has myeloma and has
# had vertebral fractures from it", "Sandra (58) is herself having chemotherapy for breast
# cancer", "Sandra herself ... had a neutropenic sepsis admission" - when the note introduces the
# name as a relative, a carer or a friend ("lives with husband Bernard (81)", "daughter Sandra",
# "husband (Harold, 86)", "Rosa, his wife,"). The name starts the sentence or a clause (after "and",
# "but", or "as", "because", "since" and the like: "as Maureen has needed more help at home since her
# vertebral fractures") and the verb after it is one of having an illness, not of telling or
# noticing ("Sandra was told about the back fracture", "Harold has noticed she is slower", "Sandra
# checked").
_RELATION = (r"(?:husband|wife|spouse|partner|daughter|son|sister|brother|mother|father|mum|mom|dad|niece|"
             r"nephew|grand(?:daughter|son|mother|father)|(?:daughter|son|sister|brother)-in-law|friend|"
             r"neighbou?r|carer|caregiver|roommate|flatmate)")
# A verb of having an illness after a clause's subject
_HAVING = (
    r"(?:(?:is|was)[ \t]+(?:himself|herself|themselves)\b|(?:himself|herself)\b|"
    r"(?:has|had|have)[ \t]+(?!(?:been|noticed|seen|found|observed|reported|said|told|asked|called|phoned|rung|brought|"
    r"helped|raised|mentioned|expressed|agreed|consented|declined|requested|given|explained|described|confirmed|"
    r"witnessed|checked|arranged|read|heard|no|not|concerns?|questions?|a\s+(?:copy|question|letter)|power|lpa|"
    r"capacity)\b)|(?:is|was)[ \t]+(?:having|on|receiving|undergoing|being[ \t]+treated|awaiting|recovering|"
    r"diagnosed|admitted|unwell)\b|underwent\b|takes\b|(?:is|was|has been)[ \t]+in[ \t]+hospital\b)")
_NAMED_SUBJECT = re.compile(
    r"(?:^|[.;:!?\n]|\b(?:and|but|as|because|since|although|though|while|whereas)\s)[ \t]*(?P<name>[A-Z][a-z]{2,})"
    r"(?:[ \t]+\(\d{1,3}\))?[ \t]+" + _HAVING)
# ... or whose it is, a few words before it: "Rachel's VWD has no bearing on her mother's management"
_NAMED_OWNER = re.compile(r"\b(?P<name>[A-Z][a-z]{2,})['\u2019]s[ \t]+(?:[\w-]+[ \t]+){0,3}$")
# ... or a pronoun of the other sex than the patient's, after a relative the sentence names: "wife
# Glenys's alendronic acid (for her osteoporosis - she had two crush fractures in her spine)" in a
# note on "72M". The patient's sex as the note writes it with the age ("72M", "68 y/o F", "81-year-
# old woman"); a note that writes both (a "16F" catheter) has none.
_PRONOUN_SUBJECT = re.compile(rf"\b(?P<pronoun>[Ss]he|[Hh]e)[ \t]+{_HAVING}")
_PATIENT_SEX = re.compile(
    r"\b\d{1,3}[ \t]*(?:(?i:y(?:rs?)?[./]?[ \t]*o\.?|yo)[ \t]*|-?[ \t]*(?i:years?|yrs?)-?[ \t]*(?i:old)[ \t]*)?"
    r"(?:(?P<letter>[MF])\b|(?P<word>(?i:man|male|gentleman|woman|female|lady))\b)")
_SEX_WORDS = {"man": "M", "male": "M", "gentleman": "M", "woman": "F", "female": "F", "lady": "F"}
_RELATION_WORD = re.compile(rf"\b{_RELATION}\b", re.IGNORECASE)
# ... or, for a pronoun that starts its sentence, a relative of the patient's the sentence before
# names ("Lorna is his main carer. She herself has osteoporosis and had two spinal crush
# fractures"): "his" or "her" says the patient's sex
_OWNED_RELATION = re.compile(rf"\b(?P<whose>his|her)[ \t]+(?:[\w-]+[ \t]+){{0,2}}{_RELATION}\b", re.IGNORECASE)
_NOT_A_NAME = frozenset("""The This That These Those There Then She He Her His They Their Patient Pt Mrs Mr Ms
    Miss Dr Sister Nurse Mum Mom Dad Father Mother Wife Husband Daughter Son Family Lives Also Plan Patients Today
    Yesterday Overnight Since Now Currently Previously Known Nil None Not No Yes Has Had Was Is Impression
    Findings History Social Collateral Background Assessment""".split())


# A carer or relative with illnesses of their own, listed after it in the sentence or the lines
# after its colon: "Harold is her main support but has his own health problems:\nprostate cancer
# with bone spread, on hormone injections, and is on warfarin for AF"
_OWN_PROBLEMS = re.compile(r"\b(?:has|with)\s+(?:his|her|their)\s+own\s+(?:(?:significant|serious|medical|health)\s+)*"
                           r"(?:health\s+problems|problems|issues|illness(?:es)?|conditions?)\b", re.IGNORECASE)
_OWN_PROBLEMS_LEAD = re.compile(rf"{_OWN_PROBLEMS.pattern}\s*:\s*$", re.IGNORECASE)


def _someone_elses(span: Span, sentence: Span, text: str) -> bool:
    """Whether ``span`` is someone else's, by the clause it is in: someone named as its subject
    (:data:`_NAMED_SUBJECT`) or its owner (:data:`_NAMED_OWNER`), a pronoun of the other sex than
    the patient's after a relative (:data:`_PRONOUN_SUBJECT`), or a carer's own problems before it
    (:data:`_OWN_PROBLEMS`)."""
    before = text[sentence.start_char:span.start_char]
    lead = _colon_line(sentence, text)
    if any(("own" in part or "OWN" in part) and pattern.search(part)
           for part, pattern in ((before, _OWN_PROBLEMS), (lead, _OWN_PROBLEMS_LEAD))):
        return True
    for found in _NAMED_SUBJECT.finditer(before):
        if CLAUSE_BREAK.search(before, found.end()) is None and _relative(found["name"], span.doc, text):
            return True
    if (found := _NAMED_OWNER.search(before)) and _relative(found["name"], span.doc, text):
        return True
    pronouns = [found for found in _PRONOUN_SUBJECT.finditer(before) if CLAUSE_BREAK.search(before, found.end()) is None]
    if not pronouns:
        return False
    named = before[:pronouns[-1].start()]
    if not named.strip():
        # the pronoun starts the sentence: whom the sentence before names ("Lorna is his main carer.
        # She herself has osteoporosis"), and the patient's sex by whose relative that is
        named = _sentence_before(sentence, text)
        if (owned := _OWNED_RELATION.search(named)) is not None:
            sex = "M" if owned["whose"].lower() == "his" else "F"
            return pronouns[-1]["pronoun"].lower() == ("she" if sex == "M" else "he")
    if (sex := _patient_sex(span.doc, text)) is not None \
            and pronouns[-1]["pronoun"].lower() == ("she" if sex == "M" else "he"):
        return _RELATION_WORD.search(named) is not None or any(
            _relative(name, span.doc, text) for name in re.findall(r"\b[A-Z][a-z]{2,}\b", named))
    return False


def _relative(name: str, doc: Doc, text: str) -> bool:
    """Whether the note introduces ``name`` as a relative, a carer or a friend ("lives with
    husband Bernard (81)", "daughter Sandra", "husband (Harold, 86)", "Rosa, his wife,")."""
    if name in _NOT_A_NAME:
        return False
    relatives = doc.user_data.setdefault(_RELATIVES, {})
    if name not in relatives:
        relatives[name] = re.search(
            rf"(?i:\b{_RELATION})[ \t]*[(,]?[ \t]*(?:(?i:Mr|Mrs|Ms)\.?[ \t]+)?{name}\b|"
            rf"\b{name}[ \t]*(?:\(|,)[ \t]*(?:\d{{1,3}}[ \t]*,[ \t]*)?(?i:(?:his|her|their|the[ \t]+patient's|"
            rf"pt's)[ \t]+)?(?i:{_RELATION})\b", text) is not None
    return relatives[name]


def _patient_sex(doc: Doc, text: str) -> str | None:
    """The patient's sex, "M" or "F", as the note writes it with the age (:data:`_PATIENT_SEX`), or
    None."""
    if _SEX not in doc.user_data:
        found = {match["letter"] or _SEX_WORDS[match["word"].lower()] for match in _PATIENT_SEX.finditer(text)}
        doc.user_data[_SEX] = found.pop() if len(found) == 1 else None
    return doc.user_data[_SEX]


def _colon_line(sentence: Span, text: str) -> str:
    """The line that ends with a colon right before ``sentence`` ("" when there is none)."""
    end = sentence.start_char
    while end > 0 and text[end - 1] in " \t\n":
        end -= 1
    return text[text.rfind("\n", 0, end) + 1:end] if end > 0 and text[end - 1] == ":" else ""


#: ``doc.user_data`` key of the names :func:`_someone_elses` has looked up (name -> a relative).
_RELATIVES = "vertebro.relatives"
#: ``doc.user_data`` key of the patient's sex (:func:`_patient_sex`).
_SEX = "vertebro.sex"


# What an earlier study showed, or what is known, stated in an indication: "Indication: L1
# compression fracture on CT 03/08, ?acute", "T12 wedge # of indeterminate age on XR 06/03", "Known
# old L3 wedge #". The indication's question is the age or the cause, asked in words ConText reads
# ("?acute", "rule out"); the fracture itself is a finding (writers mark 140 of 140 such held-out
# mentions so).
_SEEN_ON_AFTER = re.compile(
    r"[^.;?\n]{0,40}?\b(?:(?:as\s+)?(?:seen|shown|noted|demonstrated|identified|found)\s+)?(?:on|at|per|from)\s+"
    r"(?:the\s+|an?\s+)?(?:(?:outside|prior|previous|recent|plain|ED|lateral|initial|trauma|portable)\s+)?"
    r"(?:XR|x-?rays?|CT|CTs|MRI|MR|radiographs?|films?|imaging|bone\s+scan|DXA|VFA|CXR|PET(?:[-/]CT)?)\b",
    re.IGNORECASE)
_KNOWN_BEFORE = re.compile(r"\bknown\s+(?:[\w/,-]+\s+){0,4}$", re.IGNORECASE)


def _seen_before(span: Span, sentence: Span, text: str) -> bool:
    """Whether ``span`` is stated as seen on an earlier study, or known (:data:`_SEEN_ON_AFTER`)."""
    return (_SEEN_ON_AFTER.match(text, span.end_char, sentence.end_char) is not None
            or _KNOWN_BEFORE.search(text, max(sentence.start_char, span.start_char - 40), span.start_char) is not None)


# An empty box before an answer: "Fracture age: [ ] acute  [ ] subacute  [ ] chronic  [x] cannot be
# determined" - the ages not ticked are not the fracture's
_EMPTY_BOX_BEFORE = re.compile(r"(?:\[[ \t_]?\]|\u2610)[ \t]*$")


# ... or a condition: "MRI requested to date the T9 fracture - if acute she may be a candidate for
# vertebroplasty", "to age the L1 # - if it is recent and pain persists, ..."
_IF_BEFORE = re.compile(r"\bif[ \t]+(?:(?:it|this|that|they|so)[ \t]+(?:is|are|proves?|turns?[ \t]+out)[ \t]+"
                        r"(?:to[ \t]+be[ \t]+)?)?$", re.IGNORECASE)


# An age said of the fracture as a predicate ("the T12 fracture is recent") is asked or
# supposed, not stated, in a question or a condition: "to establish whether the T7 fracture is
# recent", "If the fracture is recent and painful, ...", "if MRI shows the fractures are recent";
# nor of a class: "offered for painful fractures that are recent". Stated: "An MRI showed that
# the fracture is recent", "which means the fracture is recent". Such rules carry the metadata
# ``predicate``.
_CONDITION_BEFORE = re.compile(r"\b(?:whether|if|unless)\b[^.;:]{0,60}$", re.IGNORECASE)
_RELATIVE_BETWEEN = re.compile(r"\s*(?:that|which)\s", re.IGNORECASE)


def _age_not_stated_after(modifier, span: Span, text: str) -> bool:
    """Whether an age ``modifier`` after ``span`` is an answer its form leaves unticked, a
    condition (:data:`_IF_BEFORE`), or a predicate in a question, a condition or of a class
    (:data:`_CONDITION_BEFORE`, :data:`_RELATIVE_BETWEEN`)."""
    start = span.doc[modifier.modifier_span[0]].idx
    if start < span.end_char:
        return False
    if (modifier.rule.metadata or {}).get("predicate") and (
            _CONDITION_BEFORE.search(text, max(0, span.start_char - 80), span.start_char) is not None
            or _RELATIVE_BETWEEN.match(text, span.end_char, start) is not None):
        return True
    return (_EMPTY_BOX_BEFORE.search(text, max(0, start - 6), start) is not None
            or _IF_BEFORE.search(text, max(span.end_char, start - 30), start) is not None)


def _heading_start(section, doc: Doc) -> int:
    """Where a section's heading starts: an indented heading's title begins with the white space
    that holds its line break."""
    return next((token.idx for token in doc[section.title_start:section.title_end] if not token.is_space), 0)


def _past_heading_line(section, span: Span, text: str, lists: bool = True) -> bool:
    """Whether ``span`` lies beyond the line, or the first sentence, of its section's heading,
    and (with ``lists``) beyond the list a heading ending in a colon, or alone on its line,
    introduces ("- DDx for the L1 deformity:\n  1) osteoporotic\n  2) pathologic - myeloma"):
    the lines after it that are list items, their wrapped continuations (indented, after an
    item), or indented deeper than the heading's own line, until the first that is none of these."""
    doc = span.doc
    heading = _heading_start(section, doc)
    line_end = text.find("\n", heading, span.start_char)
    if line_end < 0:
        return _SENTENCE_BREAK.search(text, heading, span.start_char) is not None
    if not lists:
        return True
    line_start = text.rfind("\n", 0, heading) + 1
    title_end = doc[section.title_end - 1].idx + len(doc[section.title_end - 1]) if section.title_end > 0 else heading
    # a heading alone on its line introduces a list as one ending in a colon does:
    # "Differentials discussed with Kasia and mum\n1. L hip subluxation\n2. Fracture - ..."
    if not (text[heading:title_end].rstrip().endswith(":") or text[heading:line_end].rstrip().endswith(":")
            or not text[title_end:line_end].strip()):
        return True
    bullet = _BULLET.match(text, heading).group()
    indent = len(text[line_start:heading]) + len(bullet)
    in_item = False
    while line_end < span.start_char:
        start = line_end + 1
        line_end = text.find("\n", start)
        line_end = len(text) if line_end < 0 else line_end
        line = text[start:line_end]
        depth = len(line) - len(line.lstrip(" \t"))
        item = not bullet and _LIST_LINE.match(line) is not None
        if not line.strip() or not (depth >= indent > 0 or item or (in_item and depth > 0)):
            return True
        in_item = item or (in_item and depth > 0)
    return False


# A bullet before a heading ("- DDx for the L1 deformity:"), and a list item under one ("1) ...",
# "- ...", "(a) ...", "a. ...")
_BULLET = re.compile(r"(?:[-*][ \t]+)?")
_LIST_LINE = re.compile(rf"[ \t]*(?:{LIST_ITEM}|\(?[a-z][.)]\s)")


# A full stop that ends a sentence: "D/D: brucellar spondylitis. No features to suggest metastasis."
_SENTENCE_BREAK = re.compile(r"\.[ \t]+[A-Z]")


# An item that starts a line ("2. L shin cellulitis", "# UTI", "- Anticoagulation")
_SIBLING_ITEM = re.compile(rf"[ \t]*(?:{LIST_ITEM}|#[ \t])")


def _past_indented_block(section, span: Span, text: str) -> bool:
    """Whether an item less indented than ``span``'s section heading, itself indented, comes
    between them: "1. Low back pain\n   Plan: continue paracetamol, heat\n\n2. L shin cellulitis"
    (the plan was the first problem's). Text at the margin that starts no item ("   Plan:\nMRI
    to assess for fracture", a wrapped export) does not end it."""
    heading = _heading_start(section, span.doc)
    line_start = text.rfind("\n", 0, heading) + 1
    indent = text[line_start:heading]
    heading_end = text.find("\n", heading, span.start_char)
    if not indent or indent.strip() or heading_end < 0:
        return False
    for line in text[heading_end + 1:span.start_char].split("\n"):
        if len(line) - len(line.lstrip(" \t")) < len(indent) and _SIBLING_ITEM.match(line):
            return True
    return False


def _past_first_paragraph(section, span: Span, text: str) -> bool:
    """Whether ``span`` lies beyond the first paragraph of its section's body."""
    doc = span.doc
    body_start = doc[section.body_start].idx if section.body_start < len(doc) else len(text)
    return span.start >= section.body_start and \
        _PARAGRAPH_BREAK.search(text, body_start, span.start_char) is not None


# A date right after a finding, or two words after it, dates it: "L1 compression fracture 2021
# treated with kyphoplasty", "T12 fracture (2019)", "L2 fracture 03/2021", "old L1 fracture (fall
# 2019)", "osteomyelitis R toe 2019", "L1 compression fracture\n  2019 (conservative)" and
# "prostate Ca s/p\nRP 2018" (hard wraps), "Urosepsis (E. coli) July 2025" (a bracket between),
# "L1 vertebroplasty (Clydeview Spinal Unit, 2021)" (where, then when, in a bracket), and a fracture
# treated with a cement procedure of then ("L1 osteoporotic collapse treated with kyphoplasty 2021").
# Not a date compared with or counted from ("new since 2025", "compared to 2019") or one to come
# ("booked 04/03/2025"), not one after a comma and words ("fractures, L2 kyphoplasty 2022": the
# kyphoplasty's). Dates after words are ConText's rules ("discitis in 2019").
#: Words before a date that do not date a finding: compared with, counted from or to come
_NOT_DATING = ("since|from|to|with|than|vs|versus|until|till|by|compared|new|and|or|booked|planned|scheduled|due|for|"
               "next|who")
_DATE_AFTER = re.compile(
    rf"(?:[ \t]*\n)?[ \t]*(?:,[ \t]*|\([^()\n]{{1,30}}\)[ \t]*,?[ \t]*|\([^()\d\n]{{1,40}}?,[ \t]*|"
    rf"\(?[ \t]*(?:(?!(?:{_NOT_DATING})\b)"
    rf"[\w/-]+(?:[ \t]+|[ \t]*\n[ \t]*)\(?){{0,2}}?|"
    r"[ \t]*,?[ \t]*(?:treated|managed)[ \t]+(?:with|by)[ \t]+(?:[\w-]+[ \t]+)?"
    r"(?:vertebro|kypho)plasty[ \t]+(?:in[ \t]+)?)"
    rf"\(?{_FINDING_DATE}",
    re.IGNORECASE)
# A cancer's date after its descriptors, a comma before the date: "Osteosarcoma L distal femur,
# 09/2011 (aged 13)", "Hodgkin lymphoma, stage IIA, nodular sclerosis, 1995" (a cancer of then). Not
# a descriptor that says it goes on ("on letrozole", "since", "now") or a treatment after the date
# ("Prostate cancer, Gleason 7, 2018, on ADT"), nor one of a lasting cancer (:data:`_LASTING_CANCER`:
# "breast cancer, metastatic to bone, 2019").
_CANCER_DATE_AFTER = re.compile(
    rf"[ \t]*,?(?:[ \t]*(?![ \t]*(?:{_NOT_DATING}|on|now|currently|still|ongoing|under)\b)[^,;:.()\n]{{1,30}}?[ \t]*,){{1,3}}"
    rf"[ \t]*\(?{_FINDING_DATE}",
    re.IGNORECASE)
# A date just before a finding, two words between at most: "CXR 03/2023 (aspiration PNA
# admission)", "2019: L1 compression fracture", 'CT 08/03/2019: "acute L2 compression fracture'
# (a report quoted). Read only when the note's date is known (a note's own header date would
# otherwise date its findings).
_DATE_BEFORE = re.compile(rf"(?<![\w/.-]){_FINDING_DATE}\)?[ \t]*[:(,-]?[ \t]*[\"'\u201c]?"
                          r"(?:[\w/-]+[ \t]+){0,2}$", re.IGNORECASE)
# A date that starts the line, an entry of a chronology: "19/11/2022 CT: acute L1 wedge compression
# fracture", "03/12/2022 GP: infected laceration of the left forearm". Read only when the note's
# date is known, as for a date before, and when the line starts the sentence (not a hard wrap's
# "Not present on CT of\n03/11/2024, in keeping with an acute fracture").
_LINE_DATE = re.compile(rf"[ \t]*(?:[-*•][ \t]*)?{_FINDING_DATE}\)?(?:[ \t]*[:,-]|[ \t])")
#: The concepts a date right after them makes history (a fracture, an infection, a procedure done,
#: a cancer treated: "Prostate cancer 2017 -- radical prostatectomy", "breast ca 2009").
DATED = frozenset({"FRACTURE", "INFECTION", "PRIOR_AUGMENTATION", "MALIGNANCY"})
#: A cancer its date does not end: spread, back, myeloma, or lesions in the bone ("metastatic breast
#: cancer (2022)", "mets 2023", "recurrence of prostate cancer after RALP (2021)", "PET/CT 11/14/2024:
#: multiple lytic lesions")
_LASTING_CANCER = re.compile(r"metasta|\bmets\b|myeloma|\bstage\s+(?:IV|4)\b|recurren|relaps|progress|lytic|"
                             r"\blesions?\b|\bdeposits?\b", re.IGNORECASE)
# The year of a date, with its month when written ("Mar 2024", "03/2024", "2024-03")
_DATE_PARTS = re.compile(
    rf"(?:(?P<month_name>{_MONTH})[- ]+|(?P<month>0?[1-9]|1[0-2])/)?(?P<year>(?:19|20)\d\d)(?:-(?P<iso_month>\d\d))?\b",
    re.IGNORECASE)
# ... and a whole day with its year, as :func:`day_readings` reads it: "02/07/2025", "7.2.2025"
_WHOLE_DAY = re.compile(r"\b(?P<first>\d{1,2})[/.](?P<second>\d{1,2})[/.](?P<year>(?:19|20)\d\d)\b")
#: A date this many days or fewer before the note's (or after it) is not the past:
#: "dx 03/2024" in a note of April 2024 names a disease found last month.
RECENT_DAYS = 183
#: ... for an infection dated right after or before it, about the screening window: "MSSA
#: bacteraemia, Feb 2025 - 6 weeks IV ceftriaxone" in a July letter is an episode treated, not a
#: current infection; unless its treatment goes on ("Discitis 01/2024, on IV antibiotics"; not "fever
#: on connection", "on arrival", "on day 3", "MSSA on swab", "seen on MRI").
RECENT_DAYS_OF = {"INFECTION": 31}
_ONGOING = re.compile(r"\b(?:on(?![ \t]+(?:connect\w*|arrival|admission|presentation|day|exam\w*|review|return|discharge|"
                      r"waking|exertion|movement|palpation|standing|walking|sitting|swabs?|(?:blood[ \t]+)?cultures?|"
                      r"urine|MRI|CT|imaging|x-?ray|XR|scan|ultrasound|US|echo|TOE|TTE|biopsy|aspirate|PCR|\d)\b)|"
                      r"still|ongoing|continu\w*|"
                      r"currently|receiving|remains?)\b", re.IGNORECASE)
#: An episode's days, its first day written whole or as its number alone ("02/03-06/03/2025",
#: "14-18/03"): ``start_first``, ``start_second`` and ``start_year``, then the last day's groups
_DAY_RANGE = (r"(?P<start_first>\d{1,2})(?:[/.](?P<start_second>\d{1,2})(?:[/.](?P<start_year>(?:19|20)?\d\d))?)?"
              rf"[ \t]*(?:-|to)[ \t]*{DAY}")
#: An infection's episode with its days right after it ("Febrile neutropenia 02/03-06/03/2025:
#: cultures negative", "Febrile neutropenia admission 02/03-07/03 (meropenem stopped ...)",
#: "febrile neutropenia (admitted 14-18/04/2025, cultures negative)", "pneumonia, admitted to
#: Northgate 20-23/09/2025", "Had a UTI 14-17/02, 3 days trimethoprim", "(post-infusion fever and
#: myalgia\n  04-05/03), settled"): the day it ended (``first``/``second``, ``year``) dates it. An
#: episode whose last day is before the note's is over, however near, unless its treatment goes on
#: (:func:`_dated_long_before`).
_EPISODE_AFTER = re.compile(
    r"(?:[ \t]*\n?[ \t]+[\w-]+){0,2}?[ \t]*\n?[ \t]*[(,:]?[ \t]*"
    r"(?:(?:admitted|admission|inpatient|hospitali[sz]ed)[ \t]+(?:(?:to|at)[ \t]+(?:[\w'-]+[ \t]+){1,3}?)?)?"
    r"(?:from[ \t]+)?" + _DAY_RANGE, re.IGNORECASE)
#: "recent" a few words before an infection: an episode just past ("recent CAP, admitted after a
#: fall", "Recent admission 1/9-1/12 for RLL CAP", "recently treated urosepsis"), as 41 of 43
#: such infections are marked across the corpora; not one just found ("recently diagnosed
#: discitis"), nor one whose treatment goes on (:data:`_ONGOING` after it), nor one denied ("no
#: recent infections")
_RECENT_BEFORE = re.compile(r"\brecent(?:ly)?\b(?!\s+(?:diagnos|develop|found|presented|presenting|started|onset))"
                            r"(?:\s+[\w.'/-]+){0,5}?\s+$", re.IGNORECASE)

#: ... and a stay in hospital named by its month: "Since last seen (January): admission in June with
#: urosepsis and delirium, now back to her baseline", "recovered well from the admission in July for
#: febrile neutropenia", "Admitted Jan with LLL pneumonia" (past when the month is before the note's)
_ADMISSION_IN_BEFORE = re.compile(
    rf"\b(?:admission|admitted|hospitali[sz](?:ation|ed)|(?:inpatient|hospital)\s+stay)\s+(?:(?:[\w-]+\s+){{0,2}}?in\s+)?"
    rf"(?:early\s+|mid-?\s*|late\s+)?(?P<month>{_MONTH})(?:\s+(?P<year>(?:19|20)\d\d))?\s+(?:with|for)\s+"
    r"(?:[\w/-]+\s+){0,3}$", re.IGNORECASE)

#: ... or said, right after it, to have been in a month: "She had a chest infection in May which you
#: treated" in a June letter, "He had chest infection (pneumonia) after Umrah in February" (past when
#: the month is before the note's; not "since May")
_MONTH_AFTER = re.compile(
    r"\)?(?:[ \t\n]+\([^()\n]{1,30}\))?[ \t\n]+(?:(?:after|following|on[ \t]+return[ \t]+from)[ \t]+(?:[\w'-]+[ \t]+){1,2}?)?"
    r"(?:back[ \t]+)?(?:in|during)[ \t]+(?:early[ \t]+|mid-?[ \t]*|late[ \t]+)?"
    rf"(?P<month>{MONTH_WORD})\b"
    r"(?:[ \t]+(?P<year>(?:19|20)\d\d))?", re.IGNORECASE)
#: ... or, right after it, to have been weeks ago: "Pneumonia earlier this month: finished
#: amoxicillin 09/07, cough gone", "a UTI last month", "chest infection three weeks ago"
_WEEKS_AGO_AFTER = re.compile(
    r"[ \t]+(?:(?:earlier|previously)[ \t]+this[ \t]+(?:month|year)|last[ \t]+month|"
    r"(?:a|one|two|three|four|five|six|[2-9])[ \t]+(?:weeks?|wks?|months?)[ \t]+ago|a[ \t]+month[ \t]+ago)\b",
    re.IGNORECASE)
#: ... and an episode whose days are written before it: "Recap: admitted 11/08-15/08 with Staph.
#: epidermidis port-associated bacteraemia", "Course of co-amoxiclav 21/02-26/02 for a chest
#: infection", "Admitted 21/07-25/07 with febrile neutropenia and E. coli bacteraemia", or with the
#: infection in brackets after the days ("July: nil 27/06-12/07 (pneumonia)"), or with only the
#: first day's number ("Readmission 14-18/03 with fever on connection") (past when its last day is
#: before the note's)
_EPISODE_BEFORE = re.compile(
    rf"\b{_DAY_RANGE}(?:\)?,?[ \t]+(?:with|for)[ \t]+(?:[\w/.'-]+[ \t]+){{0,6}}|[ \t]*\([ \t]*)$", re.IGNORECASE)
#: The longest stay or course :data:`_EPISODE_BEFORE` reads as one, in days
_EPISODE_DAYS = 120
#: ... and what a treatment put off on a day was put off for: "first zoledronic acid deferred 20/01
#: because of a\n chest infection", "infusion postponed on 03/02 due to a UTI" (past when the day
#: is more than the infection's reach, :data:`RECENT_DAYS_OF`, before the note's)
_PUT_OFF_BEFORE = re.compile(
    rf"\b(?:deferred|postponed|delayed|cancell?ed|rescheduled|rebooked|not\s+given|withheld)\s+(?:on\s+)?{DAY}"
    r"\s*,?\s*(?:because\s+of|due\s+to|owing\s+to|for)\s+(?:an?\s+)?$", re.IGNORECASE)


#: Another reading weighed right after a finding: "acute compression fracture vs Schmorl's node",
#: "Genant grade 1 wedge fracture versus physiological wedging" (ConText's "vs" reads forward
#: only); not a comparison ("vs prior", "vs 2023") nor an age ("acute vs old"), where only what
#: follows "vs" is in question
_ALTERNATIVE_AFTER = re.compile(
    r"(?:[ \t]+(?:(?:Th|[CTLS])\d{1,2}|at|of|the|superior|inferior|endplate|end\s?plate|anterior|mild|subtle)){0,3}"
    r"[ \t,]*\(?(?:vs\.?|versus)(?!\w)[ \t]+(?!(?:prior|previous|last|before|baseline|earlier|the[ \t]+prior|old|"
    r"chronic|remote|healed|acute|sub-?acute|new|recent|fresh|age|\d|[-+]))", re.IGNORECASE)
#: The findings another reading can be weighed against
ALTERNATIVES = frozenset({"FRACTURE", "OEDEMA", "RETROPULSION", "EPIDURAL_DISEASE", "INFECTION", "MALIGNANCY"})
# Advice about the infection named right before it, not one the patient has: "Neutropenic fever
# precautions reviewed: call for temp of 100.4 F or higher", "Infection counselling for
# ocrelizumab", "the neutropenic fever card". Read at the mention's end: as a ConText rule it lost
# the overlap with "precautions" that looks forward. Not "MRSA bacteraemia, contact precautions".
_ADVICE_AFTER = re.compile(r"[ \t]+(?:precautions|advice|counsell?ing|education|teaching|leaflet|card|"
                           r"instructions|warning\s+signs)\b", re.IGNORECASE)
#: A fracture in general, what would be done with one: "if recent, he may be a candidate for
#: vertebroplasty; an old fracture would be managed conservatively", "a new fracture would need an
#: MRI" (an article and age words before it, a modal verb right after it); not one with its level
#: ("an acute L1 fracture would be amenable to cement") nor one a clause goes on about ("a fracture
#: which would ..."). So too a contraindication or a cancer posited to explain something: "a
#: bleeding disorder would not explain the fractures", "an infection would account for the fever".
MODAL_CONCEPTS = frozenset({"FRACTURE", "COAGULOPATHY", "INFECTION", "MALIGNANCY"})
_ANY_BEFORE = re.compile(r"\b(?:an?|any)[ \t]+(?:(?:old|new|recent|acute|chronic|healed|healing|fresh|further|"
                         r"subsequent|osteoporotic|vertebral|compression)[ \t]+){0,2}$", re.IGNORECASE)
_MODAL_AFTER = re.compile(r"[ \t]+(?:would|will|should|may|might|could|can)[ \t]+(?:not[ \t]+|usually[ \t]+|typically[ \t]+)?"
                          r"(?:be|need|require|heal|show|have|respond|benefit|explain|account|cause)\b", re.IGNORECASE)


#: ``doc.user_data`` key of the note's date as the caller gave it (a date, a datetime or
#: Timestamp, an ISO string, None or NaT); :func:`note_date` reads it.
NOTE_DATE = "vertebro.note_date"


def note_date(doc: Doc) -> _dt.date | None:
    """The note's date as a ``datetime.date`` (None when not given or not a date)."""
    value = doc.user_data.get(NOTE_DATE)
    if isinstance(value, str):
        try:
            return _dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    if isinstance(value, _dt.datetime):
        return None if value != value else value.date()  # NaT is a datetime unequal to itself
    return value if isinstance(value, _dt.date) else None


def _long_before(date_text: str, noted: _dt.date | None, days: int = RECENT_DAYS) -> bool:
    """Whether a written date ends more than ``days`` before ``noted``, the note's date.

    The end is the last day the date can mean: 31 December of a bare year, the end of
    its month when one is written, the latest reading of a whole day (day/month or
    month/day) that is not after the note. Without a note date the date counts as the past.
    """
    found = _DATE_PARTS.search(date_text)
    if noted is None or found is None:
        return True
    day = _WHOLE_DAY.search(date_text)
    if day is not None and (readings := [reading for reading in day_readings(day, noted) if reading <= noted]):
        return (noted - max(readings)).days > days
    year = int(found["year"])
    if found["month_name"]:
        month = MONTHS.index(found["month_name"][:3].lower()) + 1
    else:
        month = int(found["month"] or found["iso_month"] or 12)
    if not 1 <= month <= 12:
        month = 12
    last_day = _dt.date(year + month // 12, month % 12 + 1, 1) - _dt.timedelta(days=1)
    return (noted - last_day).days > days


def _recent_history(modifier, doc: Doc) -> bool:
    """Whether a dated HISTORICAL modifier ("discitis in 2019", ``metadata.dated``) names a
    date too close to the note's to make its finding history (:func:`_long_before`)."""
    return bool((modifier.rule.metadata or {}).get("dated")) and not _long_before(
        doc[slice(*modifier.modifier_span)].text, note_date(doc))


def _dated_long_before(span: Span, sentence: Span, text: str) -> bool:
    """Whether a date right after ``span`` (:data:`_DATE_AFTER`), or when the note's date is
    known just before it (:data:`_DATE_BEFORE`) or at its line's start (:data:`_LINE_DATE`), is
    long before the note's."""
    if span.label_ == "MALIGNANCY" and _LASTING_CANCER.search(
            text, max(sentence.start_char, span.start_char - 40), span.end_char):
        return False
    dated = note_date(span.doc)
    found = _DATE_AFTER.match(text, span.end_char, min(sentence.end_char, span.end_char + 40))
    if found is None and span.label_ == "MALIGNANCY":
        found = _CANCER_DATE_AFTER.match(text, span.end_char, min(sentence.end_char, span.end_char + 100))
        if found is not None and (_LASTING_CANCER.search(found.group())
                                  or _ONGOING_AFTER.match(text, found.end(), sentence.end_char)):
            found = None
    if found is None and dated is not None:
        found = _DATE_BEFORE.search(text, max(sentence.start_char, span.start_char - 40), span.start_char) \
            or _line_date(span, sentence, text)
    episode = None
    if found is None and dated is not None and span.label_ == "INFECTION":
        episode = _EPISODE_AFTER.match(text, span.end_char, min(sentence.end_char, span.end_char + 60))
        if episode is not None and _a_count(episode):
            episode = None
    if found is None and episode is None:
        return False
    # the shorter reach of an infection's date only when its treatment does not go on
    goes_on = span.label_ in RECENT_DAYS_OF and _goes_on(span, sentence, text)
    days = RECENT_DAYS if goes_on else RECENT_DAYS_OF.get(span.label_, RECENT_DAYS)
    if episode is not None:
        # over when the day it ended, however it is read, is before the note's, or more than the
        # reach before it while its treatment goes on (an end to come is no reading)
        reach = days if goes_on else 0
        ended = [day for day in day_readings(episode, dated) if day <= dated]
        return bool(ended) and all((dated - day).days > reach for day in ended)
    return _long_before(found["date"], dated, days)


def _goes_on(span: Span, sentence: Span, text: str) -> bool:
    """Whether what ``span`` names goes on, by the words after it (:data:`_ONGOING`): "Discitis
    01/2024, on IV antibiotics", "Recent pneumonia, still on amoxicillin"."""
    # words that start within 60 characters, read whole ("MSSA on swab" is no treatment going on):
    # the search may look 40 characters further, never to the end of a long sentence
    found = _ONGOING.search(text, span.end_char, min(sentence.end_char, span.end_char + 100))
    return found is not None and found.start() < span.end_char + 60


def _recent_episode(span: Span, sentence: Span, text: str) -> bool:
    """Whether an infection is called recent (:data:`_RECENT_BEFORE`), said to have been weeks ago
    (:data:`_WEEKS_AGO_AFTER`), was a stay in hospital in an earlier month
    (:data:`_ADMISSION_IN_BEFORE`) or is said to have been in one (:data:`_MONTH_AFTER`), or put a
    treatment off long enough ago (:data:`_PUT_OFF_BEFORE`), and its treatment does not go on."""
    return (_RECENT_BEFORE.search(text, max(sentence.start_char, span.start_char - 40), span.start_char) is not None
            or _WEEKS_AGO_AFTER.match(text, span.end_char, sentence.end_char) is not None
            or _admitted_before(span, sentence, text) or _month_before(span, sentence, text)
            or _put_off_before(span, text)) \
        and not _goes_on(span, sentence, text)


def _put_off_before(span: Span, text: str) -> bool:
    """Whether a treatment was put off for the infection on a day (:data:`_PUT_OFF_BEFORE`) more
    than the infection's reach before the note's."""
    noted = note_date(span.doc)
    found = _PUT_OFF_BEFORE.search(text, max(0, span.start_char - 70), span.start_char) if noted else None
    return found is not None and before_either_way(found, noted, RECENT_DAYS_OF["INFECTION"])


def _month_before(span: Span, sentence: Span, text: str) -> bool:
    """Whether the month written right after an infection (:data:`_MONTH_AFTER`) is before the
    note's month."""
    found = _MONTH_AFTER.match(text, span.end_char, sentence.end_char)
    noted = note_date(span.doc)
    return found is not None and noted is not None and earlier_month(found, noted)


def _admitted_before(span: Span, sentence: Span, text: str) -> bool:
    """Whether a stay in hospital named by its month, a month before the note's, or a stay or a
    course whose last day is before the note's, is what the infection is written after
    (:data:`_ADMISSION_IN_BEFORE`, :data:`_EPISODE_BEFORE`)."""
    noted = note_date(span.doc)
    if noted is not None:
        line_start = text.rfind("\n", 0, span.start_char) + 1
        episode = _EPISODE_BEFORE.search(text, max(line_start, span.start_char - 90), span.start_char)
        if episode is not None:
            return _episode_over(episode, noted)
    found = _ADMISSION_IN_BEFORE.search(text, max(sentence.start_char, span.start_char - 80), span.start_char)
    if found is None:
        return False
    return True if noted is None else earlier_month(found, noted)


#: A British count of days, months or weeks ("5-7/7", "3-6/12", "2-4/52"): the most the count
#: before the slash can be for each number after it
_COUNT_OF = {"7": 7, "12": 11, "52": 51}


def _a_count(found: re.Match) -> bool:
    """Whether days found by :data:`_EPISODE_BEFORE` or :data:`_EPISODE_AFTER` (:data:`_DAY_RANGE`)
    with a first day written alone are a British count (:data:`_COUNT_OF`), not days: "cefalexin
    5-7/7 for cellulitis", "cellulitis 5-7/7 oral flucloxacillin" (not "14-18/03", "UTI 14-17/02")."""
    return found["start_second"] is None and found["year"] is None \
        and int(found["first"]) <= _COUNT_OF.get(found["second"], 0)


def _episode_over(found: re.Match, noted: _dt.date) -> bool:
    """Whether the days ``found`` by :data:`_EPISODE_BEFORE` end before ``noted``, however they are
    read: each reading of its first day with one of its last at most :data:`_EPISODE_DAYS` later;
    a first day written alone is in its last day's month ("14-18/03"), unless the two are a count
    (:func:`_a_count`: "cefalexin 5-7/7 for cellulitis")."""
    if _a_count(found):
        return False
    if found["start_second"] is None:
        ends = [end for end in day_readings(found, noted) if int(found["start_first"]) <= end.day]
        return bool(ends) and all(end < noted for end in ends)
    first = {"first": found["start_first"], "second": found["start_second"], "year": found["start_year"] or found["year"]}
    ends = [end for start in day_readings(first, noted) for end in day_readings(found, noted)
            if 0 <= (end - start).days <= _EPISODE_DAYS]
    return bool(ends) and all(end < noted for end in ends)


#: "resolved" written before what it resolved, a few words on: "Impression: 1. Resolved right lower
#: lobe pneumonia", "resolved C. difficile colitis" (ConText's "resolved" reads back: "fever
#: resolved"); not what it resolved with, on or after ("fever resolved after IV ceftriaxone")
_RESOLVED_BEFORE = re.compile(
    r"\bresolved[ \t]+(?!(?:with|on|after|by|following|since|in|at|within|over|when|once|and|but|or|to|from|"
    r"without|spontaneously|completely|fully|now|the|a|an|his|her|their|its)\b)(?:[\w.-]+[ \t]+){0,3}$", re.IGNORECASE)


def _line_date(span: Span, sentence: Span, text: str) -> re.Match | None:
    """The date that starts ``span``'s line (:data:`_LINE_DATE`) when the line starts its sentence,
    or when a label ends with a colon between them, an entry of a list of records under a heading
    ("REVIEW OF MEDICAL RECORDS\n02/07/2025 Dr. Wierzbicki (PCP): cystitis, nitrofurantoin")."""
    line = text.rfind("\n", 0, span.start_char) + 1
    found = _LINE_DATE.match(text, line, span.start_char)
    if found is not None and (line - 1 <= sentence.start_char and not text[line:sentence.start_char].strip()
                              or ":" in text[found.end() - 1:span.start_char]):
        return found
    return None


def _bracket_closing(span: Span, sentence: Span, text: str) -> int | None:
    """The closing bracket of the brackets ``span`` is written in, or None: an age after it
    is the bracket's head's ("Back pain 4/10 (known L1 #), unchanged": the pain is)."""
    brackets = enclosing_brackets(text, span.start_char, span.end_char, sentence.start_char, sentence.end_char)
    if brackets is None or "(" in text[span.end_char:brackets[1]]:
        return None
    return brackets[1]


# What may stand between an age word and the fracture it ages: a level ("new T12 fracture")
_LEVEL_TOKEN = re.compile(r"(?:[CTLSD]|Th)\d{1,2}|[-/]", re.IGNORECASE)


def _ages_the_next(modifier, span: Span) -> bool:
    """Whether an age word after ``span`` is written just before another fracture, and so is
    that one's: "chronic T7, T9 compression fx, no acute fx" (a level may come between: "old
    L2 wedge fracture, acute T12 fracture"). Not before an oedema: "L1 fracture with
    acute-appearing marrow oedema" ages the fracture too."""
    start, end = modifier.modifier_span
    if start < span.end or modifier.category not in ACUITY:
        return False
    doc = span.doc
    for token in doc[end:min(end + 3, len(doc))]:
        if token.ent_iob_ == "B":
            return token.ent_type_ == "FRACTURE"
        if not _LEVEL_TOKEN.fullmatch(token.text):
            return False
    return False


def _nearest(span: Span, modifiers, categories) -> tuple | None:
    best = None
    for modifier in modifiers:
        if modifier.category not in categories:
            continue
        start, end = modifier.modifier_span
        distance = span.start - end if end <= span.start else start - span.end if start >= span.end else 0
        if best is None or distance < best[0]:
            best = (distance, modifier)
    return best[1] if best else None


def _anothers_word(span: Span, modifier) -> bool:
    """Whether an AETIOLOGY cue is a word of another fracture or cancer denied, asked about, to
    come or past, or of the word before such a cancer ("Age-related osteoporosis without current
    pathological fracture" on the line after a fracture, "myeloma screen (anaemia + fracture)
    sent", "Personal history of malignant neoplasm of prostate"): then it tells nothing of
    ``span``'s cause. A fracture affirmed lends its cause ("pathological compression fracture of
    T11 with 25% height loss")."""
    start, end = modifier.modifier_span
    for other in span.doc.ents:
        if (other.start, other.end) == (span.start, span.end) or other.label_ not in ("FRACTURE", "MALIGNANCY"):
            continue
        reach = other.start - (other.label_ == "MALIGNANCY")
        if reach <= start and end <= other.end and any(cue.category in FLAGS for cue in other._.modifiers):
            return True
    return False


def _is_vertebral(span: Span, sentence: Span, levels: list[str], text: str) -> bool:
    """Whether a FRACTURE or OEDEMA span is about a vertebra (see the rule's ``anatomy``).

    "T12 fracture" and "fracture of the lumbar spine" are; "right hip
    fracture", "rib fractures" beside a level and "fractures of several ribs"
    are not, nor is a fracture (or oedema) of a vertebra's processes or
    posterior elements ("L2 transverse process fracture"), nor a height loss
    of a disc named just before or right after it, nor wedging its clause calls physiological,
    developmental or Scheuermann's; a bare "no acute fracture" is in a spine
    report.
    """
    if _explained_wedging(span, sentence, text):
        return False
    if span.label_ == "FRACTURE" and (
            POSTERIOR_ELEMENT_SUBTYPE.match(text, span.end_char, min(sentence.end_char, span.end_char + 50))
            or (FRACTURE_SITES_AFTER.match(text, span.end_char, sentence.end_char)
                and POSTERIOR_FRACTURE.search(text, sentence.start_char, span.start_char))):
        return False
    anatomy = span._.rule_anatomy
    if anatomy == "vertebral":
        return True
    before = text[max(sentence.start_char, span.start_char - 40):span.start_char]
    if anatomy == "height":
        if "vertebra" in span.text.lower():
            return True
        if not levels and (_STATURE_BEFORE.search(before)
                           or _STATURE_AFTER.match(text, span.end_char, min(sentence.end_char, span.end_char + 30))):
            return False  # the patient's stature: "height loss 4 cm", "3 cm height loss"
        if not (levels or span.doc._.spine_note or span.doc._.imaging_report or "%" in before[-12:]
                or _VERTEBRA_NAMED.search(text, sentence.start_char, sentence.end_char)):
            return False  # nothing vertebral named: "Imp: Mid back pain, height loss, long-term steroids"
        return DISC_BEFORE.search(before) is None and DISC_AFTER.match(text, span.end_char, sentence.end_char) is None
    after = text[span.end_char:min(sentence.end_char, span.end_char + 70)]
    if POSTERIOR_ELEMENT_BEFORE.search(text, max(sentence.start_char, span.start_char - 80), span.start_char) \
            or POSTERIOR_ELEMENT_AFTER.match(after) \
            or POSTERIOR_ELEMENT_BRACKETED.match(after) \
            or (span.label_ == "FRACTURE" and NAMED_BONE_BEFORE.search(before)):
        return False  # "periarticular edema at the right L4-5 facet" is not a vertebral body's
    if anatomy == "level":
        return bool(levels)
    if levels:
        return True
    after = after[:30]
    if NON_VERTEBRAL.search(before) or NON_VERTEBRAL.search(after):
        return False
    if OWN_SITE.match(after) and not (_vertebral_cue(after) or VERTEBRAL_PART.search(after)):
        return False
    sentence_text = text[sentence.start_char:sentence.end_char]  # sentence.text, without joining its tokens
    if NON_VERTEBRAL.search(sentence_text) and not _vertebral_cue(sentence_text):
        # "marrow oedema within the lateral tibial plateau ... insufficiency fracture"
        return False
    return (anatomy == "likely" or span.doc._.spine_note or _vertebral_cue(sentence_text)
            or _vertebral_cue(_sentence_before(sentence, text)))


def _sentence_before(sentence: Span, text: str) -> str:
    """The text of the sentence before ``sentence`` in its paragraph ("" at a paragraph's
    start): "The radiographs had reported the T7 and T8 deformities as age-indeterminate. MRI
    showed chronic fractures with normal marrow signal" (the fractures are those vertebrae's)."""
    doc = sentence.doc
    if sentence.start == 0:
        return ""
    start, _ = sentence_of(doc, sentence_token_starts(doc), sentence.start - 1)
    before = text[doc[start].idx:sentence.start_char]
    return "" if _PARAGRAPH_END.search(before) else before


# What a past history names that goes on: the problem the note is about ("PMH: multiple myeloma as
# above", "NSCLC as above") and a cancer still treated ("breast cancer on letrozole", "myeloma on
# lenalidomide maintenance"). Held-out writers mark such cancers current.
_ONGOING_AFTER = re.compile(
    r"[ \t]*,?[ \t]*(?:\((?:[^()\n]{0,40}[,;][ \t]*)?)?(?:as[ \t]+(?:above|per[ \t]+HPI|described[ \t]+above)\b"
    r"|(?:currently[ \t]+)?on[ \t]+(?:(?:adjuvant|maintenance|palliative|active|hormonal|systemic|first-line|second-line)[ \t]+)?"
    r"(?:chemo\w*|treatment|therapy|immunotherapy|hormone[ \t]+therapy|ADT|lenalidomide|pomalidomide|bortezomib|"
    r"daratumumab|dexamethasone|letrozole|anastrozole|exemestane|tamoxifen|zoladex|goserelin|leuprorelin|lupron|"
    r"degarelix|enzalutamide|abiraterone|apalutamide|darolutamide|palbociclib|ribociclib|abemaciclib|osimertinib|"
    r"pembrolizumab|nivolumab)\b)", re.IGNORECASE)
# ICD-10 M80: "Age-related osteoporosis with current pathological fracture, vertebra(e), initial
# encounter for fracture": both fractures are osteoporotic
_OSTEOPOROSIS_WITH = re.compile(r"\bosteoporosis\s+(?:with|w/)\s*(?:current\s+)?patholog", re.IGNORECASE)
# Wedging its own clause explains as a variant or another disease, not a fracture: "Mild anterior
# wedging of T11 and T12 ... within the physiological range", "Mild anterior wedging of T6, T7 and
# T8, within the range of a normal thoracic kyphosis", "Anterior wedging of T7, T8 and T9
# with irregular endplates ..., in keeping with old Scheuermann's disease", "Mild anterior wedging
# of T7 and T9 (10-15%) is within the range seen with senile kyphosis rather than fracture",
# "natural wedge shape at T12", "mild anterior wedging T6-T7 below the Genant threshold", and an
# endplate's depression "in keeping with a Schmorl's node" (:data:`_EXPLAINABLE`).
_VARIANT = re.compile(r"\b(?:physiolog\w*|developmental\w*|congenital\w*|scheuermann\w*|normal\s+variant|natural|"
                      r"normal\s+variation|below\s+(?:the\s+)?(?:genant\s+)?(?:threshold|cut-?off)|"
                      r"(?:in\s+keeping|consistent)\s+with\s+(?:(?:the|her|his|a|thoracic|age-related|postural)\s+){0,3}kyphosis|"
                      r"juvenile\s+kyphosis|within\s+(?:the\s+)?(?:range\s+of\s+)?(?:an?\s+)?normal|normal\s+(?:thoracic\s+)?wedging|"
                      r"within\s+the\s+range\s+(?:seen|expected|found)\s+(?:with|in|for)\s+(?:[\w-]+\s+){0,2}kyphosis|"
                      r"rather\s+than\s+(?:a\s+)?fractures?\b|"
                      r"(?:in\s+keeping|consistent|compatible)\s+with\s+(?:an?\s+)?(?:(?:small|large|tiny|old|chronic)\s+)?"
                      r"(?:schmorl'?s?\s+nod\w*|intra-?osseous\s+dis[ck]\s+herniation|limbus\s+vertebra))",
                      re.IGNORECASE)
_VARIANT_BEFORE = re.compile(rf"{_VARIANT.pattern}[\w\s,()-]{{0,25}}$", re.IGNORECASE)
# ... or the sentence after it, when that sentence explains the appearances: "There is mild anterior
# wedging of T7, T8 and T9 with Schmorl's nodes at T8-T10. The appearances are of old Scheuermann's
# disease.", "These are the appearances of Scheuermann disease.", "These meet the Sorensen criteria
# for Scheuermann's disease and are developmental, not fractures"
_APPEARANCES_AFTER = re.compile(
    r"\s*(?:(?:the\s+|these\s+)?appearances?\s+(?:are|is)\s+(?:those\s+)?"
    r"(?:of|in\s+keeping\s+with|consistent\s+with|typical\s+of|due\s+to)\b|"
    r"(?:these|this|they|the\s+(?:wedging|changes))\s+(?:are|is|meet|meets|fulfil\w*|satisf\w*)\s+(?!not\b))"
    rf"[^.\n]{{0,40}}?{_VARIANT.pattern}", re.IGNORECASE)


# What such an explanation may be of: wedging, or an endplate's depression or a deformity ("Superior
# endplate depression at L3 with a well-corticated margin in keeping with a Schmorl's node"); not
# what names a fracture ("Acute L1 superior endplate fracture")
_EXPLAINABLE = re.compile(r"^(?!.*(?:fract|fx|#|collaps|burst))(?=.*(?:wedg|end\s?-?plate|deformit|concavit|depression))",
                          re.IGNORECASE | re.DOTALL)


def _explained_wedging(span: Span, sentence: Span, text: str) -> bool:
    if _EXPLAINABLE.match(text[span.start_char:span.end_char]) is None:
        return False
    # the variant named just before ("Mild physiologic wedging of T11 and T12") or in the clause after
    if _VARIANT_BEFORE.search(text, max(sentence.start_char, span.start_char - 40), span.start_char):
        return True
    end = min(sentence.end_char, span.end_char + 200)
    clause_end = CLAUSE_BREAK.search(text, span.end_char, end)
    if _VARIANT.search(text, span.end_char, clause_end.start() if clause_end else end) is not None:
        return True
    return clause_end is None and _APPEARANCES_AFTER.match(text, sentence.end_char) is not None


def _vertebral_cue(text: str) -> bool:
    """A vertebral word or a level; "T1" in "subchondral T1 hypointense line" is the MRI sequence."""
    return VERTEBRAL_CUE.search(text) is not None or bool(find_level_groups(text))


#: ``doc.user_data`` key of :func:`reported_targets`' answer (it reads only the targets,
#: the sentences and the text, which the sectionizer and ConText do not change).
REPORTED = "vertebro.reported_targets"


def reported_targets(doc: Doc) -> list[tuple[Span, Span, list[str]]]:
    """The targets that become mentions, with their sentence and levels, in mention order.

    Every target but IGNORE spans and FRACTURE or OEDEMA spans that are not
    about a vertebra (:func:`_is_vertebral`). Needs only the targets and the
    sentences: the :class:`~pipeline.nlp.pipeline.Extractor` asks before
    running the sectionizer and ConText, which a note whose targets all
    drop out ("history of hip fracture") does not need.
    """
    ents = doc.ents
    key = tuple((span.start, span.end, span.label) for span in ents)
    known = doc.user_data.get(REPORTED)
    if known is not None and known[0] == key:
        return known[1]
    text = doc_text(doc)
    starts = sentence_token_starts(doc)
    # (label, span) by the token bounds of the span's sentence (its ``Span.sent``)
    by_sentence: dict[tuple[int, int], list[tuple[str, Span]]] = {}
    for span in ents:
        label = span.label_
        if label != "IGNORE":
            by_sentence.setdefault(sentence_of(doc, starts, span.start), []).append((label, span))
    reported = []
    for (start, end), spans in by_sentence.items():
        sentence = doc[start:end]
        levelled = [span for label, span in spans if label in LEVELLED]
        linked = link_levels(text, sentence.start_char, sentence.end_char,
                             [(span.start_char, span.end_char) for span in levelled],
                             [span.label_ for span in levelled])
        levels_of = {id(span): levels for span, levels in zip(levelled, linked)}
        for label, span in spans:
            levels = levels_of.get(id(span), [])
            if label in ("FRACTURE", "OEDEMA") and not _is_vertebral(span, sentence, levels, text):
                continue
            reported.append((span, sentence, levels))
    doc.user_data[REPORTED] = (key, reported)
    return reported


#: How far back (characters) a level-less mention looks for the fracture it refers to.
REFERENCE_WINDOW = 300


# A form's level field: "Level: T9. Pathologic fracture (subacute)", "Fracture on MRI: [x] yes
# Level: T11"
_LEVEL_FIELD = re.compile(r"\blevels?(?:\(s\))?(?:\s+(?:requested|treated|involved|affected))?[ \t]*:[ \t]*",
                          re.IGNORECASE)


def _field_levels(mention: dict, text: str) -> list[str]:
    """The levels of a level field on the mention's own line (none: [])."""
    line_start = text.rfind("\n", 0, mention["start"]) + 1
    line_end = text.find("\n", mention["end"])
    line_end = len(text) if line_end < 0 else line_end
    for field in _LEVEL_FIELD.finditer(text, line_start, line_end):
        groups = find_level_groups(text, field.end(), line_end)
        if groups and groups[0].start == field.end():
            return list(groups[0].levels)
    return []


# A list item keyed by a level: "- T12: superior endplate depression", "2) L1 - 25% height loss"
# (a bullet or a number: a report's paragraphs by level, "No fracture.\n\nT9: Heights
# maintained", are not a list of the fractures before them)
_LEVEL_ITEM = re.compile(r"[ \t]*(?:[-*][ \t]*|\d{1,2}[.)][ \t]*)")
_AFTER_ITEM_LEVEL = re.compile(r"[ \t]*[:)\u2013-]")


def _listed_levels(mention: dict, text: str) -> list[str]:
    """The levels of the list right after a fracture's sentence, one item per level ("There are
    two acute compression fractures.\n- T12: ...\n- L1: ..."); [] when no such list follows."""
    end = mention["sentence_end"]
    if not affirmed(mention) or not text[mention["end"]:end].rstrip().endswith((".", ":")):
        return []
    line = text.find("\n", end - 1)
    if line < 0 or text[end:line].strip():
        return []  # the list follows another sentence: "... fracture oedema. No retropulsion.\n- T6: ..."
    levels: list[str] = []
    while line >= 0 and len(levels) < 12:
        item = _LEVEL_ITEM.match(text, line + 1)
        if item is None:
            break
        start = item.end()
        line_end = text.find("\n", start)
        groups = find_level_groups(text, start, len(text) if line_end < 0 else line_end)
        if not groups or groups[0].start != start or len(groups[0].levels) != 1 \
                or not _AFTER_ITEM_LEVEL.match(text, groups[0].end):
            break  # not a vertebra's item ("L2-3: disc bulge" is a disc's)
        levels.extend(groups[0].levels)
        line = line_end
    return levels


def inherit_levels(mentions: list[dict], text: str) -> None:
    """A level-less mention takes the levels of a form's level field on its
    own line ("Level: T9. Pathologic fracture"), a level-less fracture those of
    the list keyed by levels right after its sentence (:func:`_listed_levels`),
    or else it refers back to the fracture just described.

    "L1 burst fracture. There is 4 mm retropulsion of the posterosuperior
    fragment." — the retropulsion is at L1. A mention in LEVELLED with no
    level takes the levels of the nearest preceding levelled, not negated
    FRACTURE or OEDEMA mention of the same section within ``REFERENCE_WINDOW``
    characters (those in the regions its sentence names), unless a fracture's
    age says it is another one, or it is past and the one before is not
    ("New L2 fracture. Previous vertebral fractures in 2015"); an affirmed
    fracture still without a level refers to the fractures its note describes
    (:func:`_the_notes_fractures`).
    In place.
    """
    last = None
    for mention in mentions:
        if mention["concept"] not in LEVELLED or mention["scope"] == "systemic":
            continue  # a fever in the next sentence is not at the fractured level
        if not mention["levels"]:
            mention["levels"] = _field_levels(mention, text) or (
                _listed_levels(mention, text) if mention["concept"] == "FRACTURE" else [])
        if mention["levels"]:
            if mention["concept"] in ("FRACTURE", "OEDEMA") and not mention["negated"]:
                last = mention  # not "I would not count those as fractures": nothing to refer to
            continue
        if (last is not None and last["section"] == mention["section"]
                and mention["start"] - last["end"] <= REFERENCE_WINDOW and not _other_age(mention, last)
                and not (mention["historical"] and not last["historical"])
                and not _another_one(mention, text)):
            mention["levels"] = _in_regions(last["levels"], mention, text)
    _the_notes_fractures(mentions, text)


def place_ages(mentions: list[dict], text: str) -> None:
    """A fracture of no stated age takes one written apart from it: by another mention of it in
    its sentence (:func:`share_ages`), in the next clause (:func:`age_said_next`) or closing its
    sentence (:func:`closing_age`). Each fills only an empty acuity, and only of a mention that
    names a fracture (:data:`_NAMES_A_FRACTURE`), found once here. In place."""
    named = [m for m in mentions if m["concept"] == "FRACTURE" and _NAMES_A_FRACTURE.search(m["lexical_variant"])]
    if named:
        share_ages(mentions, named)
        age_said_next(named, text)
        closing_age(named, text)


def share_ages(mentions: list[dict], named: list[dict]) -> None:
    """A fracture of no stated age takes the age its sentence gives the same fracture.

    "There is a pathologic compression fracture of T9 with approximately 40%
    loss of height, new since the 02/2024 CT": the age written after the
    height loss is the fracture's too, as "T12: compression fracture with
    marrow oedema, consistent with an acute fracture" is one acute fracture.
    An affirmed FRACTURE mention that names a fracture (not a bare "30% height
    loss", which writers leave unaged) and has no acuity takes that of its
    sentence's other affirmed fracture mentions of the same history that name
    its levels (or, having none, of all of them), when they agree. Not across
    levels: "old T12 wedge and a new L1 fracture" are two fractures. Marrow
    oedema beside a fracture gives its level's status (SPEC §4), not the
    mention's acuity: "the text says nothing" of the age. ``named``: the fracture mentions
    that name a fracture. In place.
    """
    # the ages of each sentence's aged fractures, by history and levels: a few level sets per
    # sentence, however many mentions
    aged: dict[tuple[int, bool], dict[frozenset, set[str]]] = {}
    for mention in mentions:
        if mention["concept"] == "FRACTURE" and mention["acuity"] and affirmed(mention):
            key = (mention["sentence_start"], mention["historical"])
            aged.setdefault(key, {}).setdefault(frozenset(mention["levels"]), set()).add(mention["acuity"])
    if not aged:
        return
    for mention in named:
        key = (mention["sentence_start"], mention["historical"])
        if mention["acuity"] or key not in aged or not affirmed(mention):
            continue
        levels = set(mention["levels"])
        ages = {age for named, found in aged[key].items() if levels <= named for age in found}
        if len(ages) == 1:
            mention["acuity"] = ages.pop()


# A mention that names the fracture, not only a measure of it ("30% height loss")
_NAMES_A_FRACTURE = re.compile(r"fractur|\bfx|#|collaps|wedg|deformit|burst|crush|\bVCFs?\b|concavit|compression",
                               re.IGNORECASE)


# The next clause says the age of the fracture just described, and only that: "There is a
# wedge compression fracture of L3 with approximately 30% loss of anterior height; it is of
# indeterminate age", "... loss of anterior height. No prior imaging to establish chronicity;
# age indeterminate.", "Lumbar XR showed an L1 wedge compression fracture; the age of this could
# not be determined as there was no previous imaging". Not "This is uncertain" (the finding's
# doubt, not its age).
_UNDETERMINED = (r"(?:indeterminate|undetermined|unknown|uncertain|unclear|not\s+known|"
                 r"(?:cannot|can\s?not|can't|could\s+not|couldn't)\s+be\s+(?:determined|established|dated|aged))")
_AGE_SAID_NEXT = re.compile(
    rf"[ \t\n]*[\"\u201c]?(?:(?:there\s+is\s+)?no\s+(?:prior|previous|earlier|old|comparison)\b[^.;\n]{{0,80}}?[.;,]"
    rf"[ \t\n]*(?:and\s+)?)?"
    rf"(?:(?:its|the)\s+(?:age|chronicity|acuity)(?:\s+of\s+(?:this|these|the|it)(?:\s+[\w-]+){{0,3}}?)?"
    rf"\s+(?:is\s+|was\s+|remains\s+|is\s+still\s+)?{_UNDETERMINED}"
    rf"|(?:age|chronicity|acuity)\s+{_UNDETERMINED}"
    rf"|(?:it|this|they|these)\s+(?:is|are)\s+of\s+(?:an?\s+)?{_UNDETERMINED}\s+(?:age|chronicity)"
    rf"|(?:it|this|they|these)\s+(?:cannot|can\s?not|can't|could\s+not)\s+be\s+(?:dated|aged)"
    # ... or that it is new against an earlier study: "This is new compared with the lateral
    # chest radiograph", "New compared with 03/2023.", "It was not present on the CT of 2022."
    rf"|(?P<new>(?:(?:it|this|these|they|which)\s+(?:is|are|was|were)\s+(?:an?\s+)?"
    rf"(?:new|(?:a\s+)?new\s+(?:fracture|finding)s?)"
    rf"|new)\s+(?:since|compared\s+(?:with|to)|in\s+comparison\s+(?:with|to)|relative\s+to|from|when\s+compared)"
    rf"|(?:it|this|these|they|which)\s+(?:is|are|was|were)\s+not\s+(?:present|seen|visible|evident)\s+(?:on|in)"
    rf"|not\s+(?:present|seen|visible|evident)\s+on\s+(?:the\s+)?(?:prior|previous|earlier)))\b",
    re.IGNORECASE)
_CLAUSE_END = re.compile(r"[.;](?=\s|$)")


def age_said_next(named: list[dict], text: str) -> None:
    """An affirmed fracture of no stated age, the last one described before a clause that
    only says its age cannot be told, is ``indeterminate``; before one that says it is new
    against an earlier study, acute and new (:data:`_AGE_SAID_NEXT`). ConText reads an age
    within its sentence, and writers put this one after (its height loss may come between: a
    measure, not another fracture). Only when the clause names no level the fracture has not
    ("the age of the T9 fracture" after "No other vertebral deformity", "New compared with 2023
    at T9" after an L2 fracture). ``named``: the fracture mentions that name a fracture, in
    text order. In place.
    """
    for index, mention in enumerate(named):
        if mention["acuity"] or not affirmed(mention) or mention["historical"]:
            continue
        end = _CLAUSE_END.search(text, mention["end"], min(len(text), mention["end"] + 250))
        if end is None:
            continue
        said = _AGE_SAID_NEXT.match(text, end.end())
        if said is None or _another_fracture_after(named, index, end.end()):
            continue
        closes = _CLAUSE_END.search(text, said.end(), min(len(text), said.end() + 200))
        named = {level for group in find_level_groups(text, said.start(), closes.start() if closes else said.end())
                 for level in group.levels}
        if named <= set(mention["levels"]):
            if said.group("new"):
                mention["acuity"], mention["new"] = "acute", True
            else:
                mention["acuity"] = "indeterminate"


def _another_fracture_after(named: list[dict], index: int, limit: int) -> bool:
    """Whether another of ``named`` (in text order) starts after ``named[index]`` ends and
    before ``limit``."""
    mention = named[index]
    for other in named[index + 1:]:
        if other["start"] >= limit:
            return False
        if other["start"] >= mention["end"]:
            return True
    return False


# An age that closes the fracture's sentence, after what else it says of the vertebra: "L1: mild
# anterior wedge compression (~15%) with no oedema, chronic.", "T7: mild anterior wedge deformity
# (about 15%) with normal marrow signal on all sequences - chronic.", "L2: mild anterior wedge
# deformity with normal STIR signal and fatty marrow, in keeping with an old injury." ConText's
# window stops short of it, or gives it to the oedema just before. Not "no acute": a denial
# before the age is no closing age.
_CLOSING_AGE = re.compile(
    r"(?:[,;:(]|\s[-\u2013\u2014]|--)[ \t\n]*"
    r"(?:(?:and|which\s+is|is|appears|looks|likely|probably|in\s+keeping\s+with|consistent\s+with|"
    r"compatible\s+with|typical\s+of|suggestive\s+of|appearances\s+(?:are\s+)?(?:those\s+)?of)[ \t\n]+)*"
    r"(?:an?[ \t\n]+)?(?P<age>acute|sub-?acute|chronic|old|healed|remote|recent|long-?standing)"
    r"(?:[- ]?(?:appearing|looking))?"
    r"(?:[ \t\n]+(?:(?:osteoporotic|compression|wedge|insufficiency)[ \t\n]+)?"
    r"(?:injury|fracture|deformity|changes?|process|finding|appearances?))?"
    r"[ \t]*\)?[ \t]*[.;]?[ \t]*$", re.IGNORECASE)
# ... or that it was not there on an earlier study: "compression fracture of L2 with approximately
# 35% loss of height centred on the superior endplate, not present on the CT KUB of 11/05/2022"
_CLOSING_NEW = re.compile(r"[,;][ \t\n]*(?:which[ \t\n]+(?:is|was)[ \t\n]+|and[ \t\n]+)?not[ \t\n]+"
                          r"(?:present|seen|visible|evident)[ \t\n]+(?:on|in)\b[^.;,]*[.;]?[ \t]*$", re.IGNORECASE)
_CLOSING_AGE_OF = {"acute": "acute", "recent": "acute", "subacute": "subacute", "sub-acute": "subacute",
                   "healed": "healed"}

#: How far before its sentence's end a fracture may be to take the age that closes it
_CLOSING_REACH = 200


def closing_age(named: list[dict], text: str) -> None:
    """An affirmed fracture of no stated age, the last one its sentence names and no more than
    ``_CLOSING_REACH`` characters before the sentence's end, takes the age that closes the
    sentence (:data:`_CLOSING_AGE`), or is acute and new when the sentence closes saying it was
    not on an earlier study (:data:`_CLOSING_NEW`). ``named``: the fracture mentions that name
    a fracture, in text order. In place."""
    last = {mention["sentence_start"]: mention for mention in named}  # the last of each sentence
    for mention in last.values():
        if (mention["acuity"] or not affirmed(mention)
                or not 0 < mention["sentence_end"] - mention["end"] <= _CLOSING_REACH):
            continue
        tail = text[mention["end"]:mention["sentence_end"]]
        found = _CLOSING_AGE.search(tail)
        if found is not None:
            age = found.group("age").lower()
            mention["acuity"] = _CLOSING_AGE_OF.get(age, "chronic")
        elif _CLOSING_NEW.search(tail):
            mention["acuity"], mention["new"] = "acute", True


# "new", "other" and their kin a few words before a denied finding: "No new compression
# deformity", "no other vertebral fracture", "without further collapse"
_ANOTHER_BEFORE = re.compile(r"\b(?:new|other|another|further|additional|incident|more)\b(?:\s+[\w-]+){0,2}?\s+$",
                             re.IGNORECASE)


def _another_one(mention: dict, text: str) -> bool:
    """Whether a level-less mention is not the finding just described: a relative's ("sister
    with several spine fractures") or one denied as new or other ("No new compression
    deformity", "no other fracture"); "No retropulsion" after an L1 fracture is L1's, as is
    a planned "kyphoplasty" or the "acute fracture" an MRI may confirm."""
    if mention["family"]:
        return True
    return mention["negated"] and _ANOTHER_BEFORE.search(
        text, max(mention["sentence_start"], mention["start"] - 40), mention["start"]) is not None


# Region words, and the level regions each can name
_REGION_WORD = re.compile(r"\b(?:cervical|thoracolumbar|thoracic|dorsal|lumbosacral|lumbar|sacr|coccy)",
                          re.IGNORECASE)
_REGIONS_OF = {"cervical": "C", "thoracolumbar": "TL", "thoracic": "T", "dorsal": "T", "lumbar": "L",
               "lumbosacral": "LS", "sacr": "S", "coccy": "S"}


# The regions an examination covers, not where a finding lies: "MRI of the thoracic and lumbar
# spine with STIR to date the fractures"
_EXAMINED = re.compile(r"\b(?:mri|ct|x-?rays?|xr|radiographs?|films?|imaging|scans?|views?)\s+(?:of\s+)?(?:the\s+)?"
                       r"(?:(?:cervical|thoracic|dorsal|lumbar|lumbosacral|thoracolumbar|sacral|whole|entire)\b"
                       r"[\s,/&-]*(?:and\s+)?)+spines?\b", re.IGNORECASE)


def _in_regions(levels: list[str], mention: dict, text: str) -> list[str]:
    """The ``levels`` in the regions its sentence names, if it names any and each has one of
    them: a fracture "of the sacrum" after an L1 fracture is not at L1, a "collapsed
    vertebra, lumbar region" after T12 and L3 fractures is L3's."""
    start, end = mention["sentence_start"], mention["sentence_end"]
    if _REGION_WORD.search(text, start, end) is None:
        return list(levels)  # most sentences: no region word, no copy of the sentence
    regions = {_REGIONS_OF[word.lower()] for word in _REGION_WORD.findall(_EXAMINED.sub(" ", text[start:end]))}
    if not regions:
        return list(levels)
    if not all(any(level[0] in region for level in levels) for region in regions):
        return []  # "no other fracture of the thoracic or lumbar spine" after T11's: not T11's
    return [level for level in levels if any(level[0] in region for region in regions)]


def _the_notes_fractures(mentions: list[dict], text: str) -> None:
    """An affirmed fracture left without a level refers to the fractures its note names.

    In a note that names one vertebral level and nothing else, it is that
    level's: the pathology of "SPECIMEN: L1 vertebral body core" that finds
    "reparative callus at a recent fracture site", "the fracture" of a letter
    about the L2 fracture. Else, in a note whose affirmed fractures name
    levels, it takes theirs, those of its own age when it has one ("old L2
    wedge fracture ... acute T12 fracture ... a new vertebral fracture on
    alendronate" is T12's; "3 VCFs" are all of them), or else the unaged ones:
    a summary of what the note describes, not a fracture elsewhere. Not when
    its sentence names another region ("a fracture of the sacrum" in a note
    about L1), nor when its age says it is not the one described ("old L4
    fracture ... two acute thoracolumbar fractures"). A past one takes the
    levels of the note's past or old fractures only ("T12 and L1 compression
    fractures in 2019 ... pain since his back fractures in 2019"): beside a
    current fracture, "previous vertebral fractures (details unavailable)"
    are others. A current one takes the current ones' when there are any: a
    count of "three vertebral fractures" beside "chronic T11 and L2 ...
    history of L4 compression fracture" does not make L4 a fracture of no age.
    """
    orphans = [m for m in mentions if m["concept"] == "FRACTURE" and not m["levels"]
               and affirmed(m)]
    if not orphans:
        return
    described = [m for m in mentions if m["concept"] == "FRACTURE" and m["levels"]]
    named = {level for group in find_level_groups(text) for level in group.levels}
    if len(named) == 1:
        for mention in orphans:
            if not any(_other_age(mention, m) for m in described):
                mention["levels"] = _in_regions(list(named), mention, text)
        return
    described = [m for m in described if affirmed(m)]
    past = [m for m in described if m["historical"] or _age_of(m) == "old"]
    current = [m for m in described if not m["historical"]] or described
    for mention in orphans:
        if not mention["historical"]:
            if current:
                mention["levels"] = _levels_referred_to(mention, current, text)
        elif past:
            mention["levels"] = _levels_referred_to(mention, past, text)


def _levels_referred_to(mention: dict, described: list[dict], text: str) -> list[str]:
    """The levels of the ``described`` fractures an orphan fracture refers to: all of them,
    or with an age those of its age, else the unaged ones; within its sentence's regions."""
    age = _age_of(mention)
    if age is not None:
        same = [m for m in described if _age_of(m) == age]
        described = same or [m for m in described if _age_of(m) is None]
    levels = sort_levels(level for m in described for level in m["levels"])
    if "vertebra" in text[mention["sentence_start"]:mention["sentence_end"]].lower():
        # an ICD title's pair: "S22.080A Wedge compression fracture of T11-T12 vertebra" is the
        # fracture of the two the note describes
        pair = icd_pair_levels(text, mention["sentence_start"], mention["sentence_end"])
        levels = [level for level in levels if level in pair] or levels
    return _in_regions(levels, mention, text)


def _age_of(mention: dict) -> str | None:
    """A fracture's age class ("new", "old", "indeterminate") or None (not stated)."""
    return _AGE_CLASS.get(mention["acuity"], mention["acuity"] or None)


#: The ages of a fracture that cannot describe the same fracture at once.
_AGE_CLASS = {"acute": "new", "subacute": "new", "chronic": "old", "healed": "old"}


def _other_age(mention: dict, last: dict) -> bool:
    """Whether a fracture's age says it is not the one just described ("L4: old compression
    fracture, healed. ... fall with two acute thoracolumbar fractures")."""
    if mention["concept"] != "FRACTURE":
        return False
    ages = _AGE_CLASS.get(mention["acuity"]), _AGE_CLASS.get(last["acuity"])
    return None not in ages and ages[0] != ages[1]


# An abbreviation that the note spells out as something else: "County Health Access Program (HAP)
# application started" - its HAP is no hospital-acquired pneumonia. Spelled out: the words before
# its bracket, their initials the abbreviation's letters (little words may be skipped)
_ABBREVIATION = re.compile(r"[A-Z]{2,6}")
_LITTLE_WORDS = frozenset(("of", "and", "the", "for", "in", "on", "to", "&"))
# ... or, anywhere in the note, writes as the name of a programme or a form: "HAP application"
_FORM_WORDS = r"(?:application|enrol\w*|approv\w*|letter|card|programm?e?s?|eligib\w*)\b"
# ... or as the other thing it also names: a pharmacy's monitored dosage system ("Lindsay's
# Pharmacy (weekly MDS)", "carers give meds from the MDS", "MDS, SCR"), not myelodysplasia
_OTHER_MEANINGS = {
    "MDS": re.compile(r"\b(?:weekly|monthly|pharmacy|chemist|blister|dosette|from\s+the|in\s+an?|via\s+(?:the\s+)?)\s+MDS\b"
                      r"|\bMDS\s+(?:trays?|packs?|box(?:es)?|changes?|unchanged|updated|supplied|filled|,\s*SCR)\b"
                      r"|\b(?:monitored\s+dosage\s+system|compliance\s+aid)\b", re.IGNORECASE),
}


def _without_other_abbreviations(mentions: list[dict], text: str) -> list[dict]:
    """``mentions`` less those of an abbreviation the note spells out as words that hold no
    mention of the same concept ("Health Access Program (HAP)"; not "hospital-acquired
    pneumonia (HAP)"), or writes as a programme's or a form's name ("HAP application")."""
    other: dict[tuple[str, str], bool] = {}
    kept = []
    for mention in mentions:
        word = mention["lexical_variant"].rstrip("s")
        if _ABBREVIATION.fullmatch(word):
            key = (word, mention["concept"])
            if key not in other:
                other[key] = _spelled_out_otherwise(word, mention["concept"], mentions, text)
            if other[key]:
                continue
        kept.append(mention)
    return kept


def _spelled_out_otherwise(abbreviation: str, concept: str, mentions: list[dict], text: str) -> bool:
    """Whether the note writes ``abbreviation`` as a programme's or a form's name or as the other
    thing it names (:data:`_OTHER_MEANINGS`), or spells it out in the words before its bracket
    without a mention of ``concept`` among them."""
    if re.search(rf"\b{abbreviation}\s+{_FORM_WORDS}", text, re.IGNORECASE):
        return True  # "HAP application submitted 07/03", "help with HAP and scheduling"
    if abbreviation in _OTHER_MEANINGS and _OTHER_MEANINGS[abbreviation].search(text):
        return True  # "carers give meds from the MDS"
    for bracket in re.finditer(rf"\(\s*{abbreviation}s?\s*\)", text):
        words = list(re.finditer(r"[A-Za-z]+", text[max(0, bracket.start() - 80):bracket.start()]))
        offset = max(0, bracket.start() - 80)
        for candidates in (words, [word for word in words if word.group().lower() not in _LITTLE_WORDS]):
            spelled = candidates[-len(abbreviation):]
            if len(spelled) == len(abbreviation) and "".join(
                    word.group()[0] for word in spelled).upper() == abbreviation:
                start = offset + spelled[0].start()
                return not any(other["concept"] == concept and start <= other["start"] < bracket.start()
                               for other in mentions)
    return False


# What a past procedure was done for, after it in its sentence: "s/p L1 kyphoplasty 06/2022 (Dr.
# Harrowgate) for a painful L1 compression fracture", "Prior T12 vertebroplasty in 2021 for an
# osteoporotic fracture": that fracture is past too; on the next line too, unless it starts an item
_FOR_BETWEEN = re.compile(rf"(?:[^;\n]|\n(?!{_SIBLING_ITEM.pattern})){{0,60}}?\bfor\s+(?:[\w-]+\s+){{0,4}}$",
                          re.IGNORECASE)


def _past_procedures_reasons(mentions: list[dict], text: str, noted: _dt.date | None) -> None:
    """A fracture a procedure dated long before the note was done for (:data:`_FOR_BETWEEN`) is
    historical ("2 weeks status post L1 kyphoplasty performed on 09/16/2025 for an acute L1
    compression fracture" is not). In place."""
    done = None
    for mention in mentions:
        if mention["concept"] == "PRIOR_AUGMENTATION":
            done = mention if mention["historical"] and affirmed(mention) else None
        elif (mention["concept"] == "FRACTURE" and done is not None
              and mention["sentence_start"] == done["sentence_start"] and not mention["historical"]
              and _FOR_BETWEEN.fullmatch(text, done["end"], mention["start"])):
            dated = re.search(_FINDING_DATE, text[done["end"]:mention["start"]], re.IGNORECASE)
            mention["historical"] = dated is not None and _long_before(dated["date"], noted)
            done = None


# A clause that goes on to say the episode is over, after what else it says of it: "fever 38.0 on
# 11/10 - no source found, cultures no growth, settled", "UTI diagnosed by her GP on 07/11 -
# nitrofurantoin 3 days, completed 10/11", "pneumonia - last admission 11/2024, IV co-amoxiclav,
# recovered", "(completed 06/05)". The word comes after a comma, colon, semicolon, bracket or dash
# with nothing but a few linking words between ("antibiotics completed", "which has since
# resolved", "cleared with a week of doxycycline"): not "not yet treated", "outcome: not
# recovered", "treated with IV ceftriaxone, day 3", "recovering", "improving" (still going on),
# "and treated", nor a fever "settled with paracetamol" (the fever, not what caused it).
_COURSE_OVER = re.compile(
    r"(?:[,;:(]|\s[-\u2013\u2014]|--)[ \t\n]*"
    r"(?:(?:and|now|since|all|fully|completely|then|antibiotics|abx|course|symptoms|which|this|it|has|have|"
    r"had|was|were|been)[ \t\n]+){0,4}"
    r"(?P<word>settled|resolved|recovered|cleared|healed|completed|finished|"
    r"treated(?![ \t\n]*(?:with|by|on|for|as)\b))\b"
    r"(?![ \t\n]*(?:if|when|once|until|but)\b)"
    r"(?![ \t\n]+(?:with|on|after)[ \t\n]+(?:regular[ \t\n]+)?(?:paracetamol|acetaminophen|tylenol|ibuprofen|"
    r"antipyretics?|(?:iv[ \t\n]+)?fluids)\b)"
    r"(?![ \t]+(?:is|are|was|were|will|should|must)\b)", re.IGNORECASE)
_COURSE_OVER_VALUE = {"completed": "treated", "finished": "treated", "treated": "treated"}
#: What ends the clause of an episode before its closing word: another line's list item, label
#: ("\nSecondary: delirium (resolved)") or coded diagnosis ("\n N17.9 AKI - resolved")
_COURSE_BREAK = re.compile(r"\n[ \t]*(?:[-*#\u2022]|\d{1,2}[.)][ \t]|[A-Z]\d{2}(?:\.\d+)?\b|[A-Za-z][\w /-]{0,30}:)")
#: A bracket's words, whose semicolons do not end the clause: "MRSA bacteraemia (1 of 2 sets; same
#: organism) - cleared"
_BRACKETED = re.compile(r"\([^()]*\)")
#: An infection named as the cause of what follows, whose course that is: "Sepsis-associated
#: thrombocytopenia, nadir Plt 41 (15/10), recovered" (the count recovered)
_CAUSE_OF_AFTER = re.compile(r"[- ]?(?:associated|related|induced|driven|triggered)\b", re.IGNORECASE)
#: How far after an infection its sentence may say the episode is over
_COURSE_REACH = 250


def closing_course(mentions: list[dict], text: str) -> None:
    """An affirmed infection of no stated course, whose clause goes on to say the episode is over
    (:data:`_COURSE_OVER`, within ``_COURSE_REACH`` characters and its sentence, and no semicolon
    between them, outside brackets, but one right before the word: in "Active issues: HAP on IV
    pip-tazo; E. coli UTI (treated)" the UTI's), is past (``historical``, as writers mark it) and
    ``resolved`` ("settled", "recovered", "cleared", "healed") or ``treated`` ("completed", "finished",
    "treated"). Not an infection named as another finding's cause ("Sepsis-associated
    thrombocytopenia, ..., recovered"). ConText's window stops at a nearer finding or ten words on;
    writers put the end of an episode after its dates, cultures and drugs. In place."""
    for mention in mentions:
        if (mention["concept"] != "INFECTION" or mention["corrected"] or not affirmed(mention)
                or _CAUSE_OF_AFTER.match(text, mention["end"])):
            continue
        end = min(mention["sentence_end"], mention["end"] + _COURSE_REACH)
        stop = _COURSE_BREAK.search(text, mention["end"], end)
        found = _COURSE_OVER.search(text, mention["end"], stop.start() if stop is not None else end)
        if found is not None and ";" not in _BRACKETED.sub("", text[mention["end"]:found.start()]):
            mention["corrected"] = _COURSE_OVER_VALUE.get(found.group("word").lower(), "resolved")
            mention["historical"] = True


# What ends a relative's clause before a later finding: another subject ("and she has", "the
# patient", a name's "Mrs", "and that it is offered for painful recent fractures"), a possessive
# that may be the patient's, a contrast, or a clause mark
_SUBJECT_CHANGE = re.compile(r"[;:()]|\b(?:she|he|they|it|this|that|these|those|I|we|you|her|his|their|its|"
                             r"patient|pt|pts|mrs?|ms|dr|but|whereas|while|although|though|however|unlike|except)\b",
                             re.IGNORECASE)
#: What joins a relative's findings: "osteoporosis and vertebral fractures", "osteoporosis with
#: a dowager's hump and several spinal fractures" (not a comma alone: "Sister with osteoporosis,
#: L1 fracture on today's MRI" may list the patient's own)
_COORDINATED = re.compile(r"\b(?:and|or|with|plus|as\s+well\s+as|also|then)\b|&", re.IGNORECASE)
#: How far after a relative's finding the same clause's next finding may be
_FAMILY_REACH = 100


def share_family(mentions: list[dict], text: str) -> None:
    """A finding coordinated with a relative's in the same clause is the relative's too: "Her
    mother (78) has osteoporosis and has had two spinal crush fractures", "sister recently
    diagnosed with pregnancy-associated osteoporosis and vertebral fractures" (ConText's six
    words after "sister" end before "fractures"). Only within ``_FAMILY_REACH`` characters of
    the relative's finding, in its sentence, joined to it (:data:`_COORDINATED`) with no subject
    change between them (:data:`_SUBJECT_CHANGE`: "her mother had osteoporosis and she has two
    fractures" is the patient's). In place."""
    last = None
    for mention in mentions:
        if last is not None and (mention["sentence_start"] != last["sentence_start"]
                                 or mention["start"] - last["end"] > _FAMILY_REACH):
            last = None
        if mention["family"]:
            last = mention
        elif last is not None and mention["start"] >= last["end"]:
            between = text[last["end"]:mention["start"]]
            if _COORDINATED.search(between) and _SUBJECT_CHANGE.search(between) is None:
                mention["family"] = True
                last = mention
            else:
                last = None


#: "the" before an infection: the one the note has already named ("Admission in January with
#: pneumonia - fully recovered ... he had put it down to the pneumonia")
_DEFINITE_BEFORE = re.compile(r"\b(?:the|that)[ \t]+$", re.IGNORECASE)


def _episode_named_before(mentions: list[dict], text: str) -> None:
    """An infection the note calls "the pneumonia", when the note's other mentions of the same words
    are all past (historical, or treated or resolved), is that past episode. In place."""
    infections = [mention for mention in mentions if mention["concept"] == "INFECTION"
                  and not (mention["negated"] or mention["hypothetical"] or mention["family"])]
    for mention in infections:
        if mention["uncertain"] or mention["historical"] or mention["corrected"] or not _DEFINITE_BEFORE.search(
                text, max(0, mention["start"] - 6), mention["start"]):
            continue
        word = mention["lexical_variant"].lower()
        others = [other for other in infections if other is not mention and other["lexical_variant"].lower() == word]
        mention["historical"] = bool(others) and all(
            other["historical"] or other["corrected"] in ("resolved", "treated") for other in others)


# A checklist's column heads ("Y    N    N/A", "Yes  No") ending a line, alone or after the
# list's name and a gap ("Pre-infusion screen (nurse)        Y    N"), and a row's mark after a
# gap: "x", a tick, or a ticked box ("[ ]  [x]", "☒")
_GRID_HEAD = re.compile(r"(?im)^(?:[^\n]*?\S[ \t]{2,}|[ \t]*)(?P<yes>y(?:es)?)[ \t]{2,}(?P<no>no?)"
                        r"(?:[ \t]{2,}(?P<na>n/?a))?[ \t]*$")
_GRID_MARK = re.compile(r"(?<=\S[ \t])[ \t]+(?P<mark>[xX✓✔*])(?=[ \t]|$)|\[(?P<boxed>[xX✓✔*])\]|(?P<glyph>[☒☑])")
_GRID_GAPS = ("  N", "  n", "\tN", "\tn")
#: What a mark in each column says of the row's mentions.
_GRID_FLAG = {"no": "negated", "na": "hypothetical"}


def grid_answers(mentions: list[dict], text: str) -> None:
    """A checklist answered by a mark under its column ("Anticoagulant in last 7 days      x"
    under the N of "Y    N    N/A"): a mark under N negates the row's mentions, under N/A makes
    them hypothetical. Rows run from the head to the first blank line. In place."""
    if not mentions or not any(gap in text for gap in _GRID_GAPS):
        return  # no column head ("Y    N") can be there
    for head in _GRID_HEAD.finditer(text):
        line_start = text.rfind("\n", 0, head.start("yes")) + 1
        columns = {name: head.start(name) - line_start for name in ("yes", "no", "na") if head.group(name)}
        end = text.find("\n\n", head.end())
        end = len(text) if end < 0 else end
        row_start = head.end() + 1
        while row_start < end:
            row_end = text.find("\n", row_start, end)
            row_end = end if row_end < 0 else row_end
            mark = _GRID_MARK.search(text, row_start, row_end)
            if mark is not None:
                where = mark.start(mark.lastgroup) - row_start
                column = min(columns, key=lambda name: abs(columns[name] - where))
                flag = _GRID_FLAG.get(column)
                if flag is not None and abs(columns[column] - where) <= 3:
                    for mention in mentions:
                        if row_start <= mention["start"] < mark.start():
                            mention[flag] = True
            row_start = row_end + 1


# A table's cell that answers no: "N", "no", "nil", "none", "neg", "absent", "-"
_NO_CELL = re.compile(r"[ \t]*(?:n|no|nil|none|neg|negative|absent|not\s+present|-|\u2013|\u2717)[ \t]*", re.IGNORECASE)


def column_answers(mentions: list[dict], text: str) -> None:
    """A table's column head answered no in every row under it: "Date | Size (cm) | Exudate |
    Infection signs | Pain" over rows "04/03/25 | 3.4 x 2.1 | low ser | N | 2/10" (cells between
    ``|``): the head's mentions are negated. The head is the first line of the table; its rows run
    to the first line without a ``|``. In place."""
    if "|" not in text:
        return
    for mention in mentions:
        line_start = text.rfind("\n", 0, mention["start"]) + 1
        line_end = text.find("\n", mention["end"])
        line_end = len(text) if line_end < 0 else line_end
        head = text[line_start:line_end]
        previous = text.rfind("\n", 0, max(line_start - 1, 0)) + 1
        if head.count("|") < 2 or (line_start > 0 and "|" in text[previous:line_start - 1]):
            continue
        column = text.count("|", line_start, mention["start"])
        if "|" in text[mention["start"]:mention["end"]] or column != text.count("|", line_start, mention["end"]):
            continue
        cells, row_start = [], line_end + 1
        while row_start < len(text):
            row_end = text.find("\n", row_start)
            row_end = len(text) if row_end < 0 else row_end
            row = text[row_start:row_end].split("|")
            if len(row) < 3:
                break
            if column < len(row):
                cells.append(row[column])
            row_start = row_end + 1
        if cells and all(_NO_CELL.fullmatch(cell) for cell in cells):
            mention["negated"] = True


@Language.factory("vertebro_attributes", default_config={"section_implies": {}})
def make_attributes(nlp: Language, name: str, section_implies: dict):
    # target-rule attributes read only here: a negative word ("afebrile") and
    # a phrase that names two concepts ("epidural abscess")
    for extension, default in (("rule_negated", False), ("rule_also", "")):
        if not Span.has_extension(extension):
            Span.set_extension(extension, default=default)
    return MentionAttributes(section_implies=section_implies)


class MentionAttributes:
    """Sets ``doc._.vertebro_mentions`` from ``doc.ents`` (see module docstring)."""

    def __init__(self, *, section_implies: dict):
        self.section_implies = section_implies

    def __call__(self, doc: Doc) -> Doc:
        text = doc_text(doc)
        sections = doc._.sections or ()
        mentions: list[dict] = []
        for span, sentence, levels in reported_targets(doc):
            mentions.extend(self._mentions(text, sections, span, sentence, levels))
        mentions.sort(key=lambda mention: (mention["start"], mention["end"], mention["lab"]))
        mentions = _without_other_abbreviations(mentions, text)
        _past_procedures_reasons(mentions, text, note_date(doc))
        closing_course(mentions, text)
        _episode_named_before(mentions, text)
        share_family(mentions, text)
        inherit_levels(mentions, text)
        place_ages(mentions, text)
        grid_answers(mentions, text)
        column_answers(mentions, text)
        doc._.vertebro_mentions = mentions
        return doc

    def _mentions(self, text: str, sections, span: Span, sentence: Span, levels: list[str]) -> list[dict]:
        (all_modifiers, rule_historical, rule_negated, rule_acuity, rule_aetiology, rule_scope, rule_also,
         rule_labs) = _extension_values(span, MENTION_EXTENSIONS)
        # medspaCy's overlap test misses a modifier lying strictly inside its
        # target ("neck supple, no lymphadenopathy" as one target is not negated)
        modifiers = [modifier for modifier in all_modifiers
                     if not (span.start <= modifier.modifier_span[0] and modifier.modifier_span[1] <= span.end)
                     and not _recent_history(modifier, span.doc)]
        categories = {modifier.category for modifier in modifiers}
        flags = {name: category in categories for category, name in FLAGS.items()}
        flags["negated"] = flags["negated"] or bool(rule_negated) or _ANSWERED_N.match(text, span.end_char) is not None
        flags["family"] = flags["family"] or _someone_elses(span, sentence, text)
        flags["uncertain"] = flags["uncertain"] or (
            span.label_ in ALTERNATIVES and _ALTERNATIVE_AFTER.match(text, span.end_char, sentence.end_char) is not None)
        flags["hypothetical"] = flags["hypothetical"] or (
            span.label_ in MODAL_CONCEPTS and _MODAL_AFTER.match(text, span.end_char) is not None
            and _ANY_BEFORE.search(text, max(sentence.start_char, span.start_char - 40), span.start_char) is not None
        ) or (span.label_ == "INFECTION" and _ADVICE_AFTER.match(text, span.end_char) is not None)
        flags["historical"] = flags["historical"] or bool(rule_historical) or (
            span.label_ in DATED and _dated_long_before(span, sentence, text)) or (
            span.label_ == "INFECTION" and not flags["negated"] and _recent_episode(span, sentence, text))

        found = _section_at(sections, span.start)
        section = found.category if found is not None and found.category else "other"
        implied = self.section_implies.get(section, {})
        if implied.get("paragraph") and _past_first_paragraph(found, span, text):
            section, implied = "other", {}
        elif implied.get("line") and _past_heading_line(found, span, text, implied.get("list", True)) or (
                implied and _past_indented_block(found, span, text)):
            # back in the section the heading was written in ("A/P: ... - DDx: ...\n# HLD",
            # "A/P:\n1. Back pain\n   Plan: MRI\n2. UTI")
            before = _section_before(sections, found)
            section = before.category if before is not None and before.category else "other"
            implied = {} if section == "other" else self.section_implies.get(section, {})
            if implied.get("line") or implied.get("paragraph"):
                section, implied = "other", {}
        if implied.get("imaging_only") and not span.doc._.imaging_report:
            implied = {"section": implied["section"]} if "section" in implied else {}
        seen_before = bool(implied.get("uncertain")) and _seen_before(span, sentence, text)
        if seen_before:
            implied = {name: value for name, value in implied.items() if name != "uncertain"}
        applies = implied.get("concepts")
        if (applies is None or span.label_ in applies) and span.label_ not in implied.get("except_concepts", ()):
            for name in FLAGS.values():
                if implied.get(name):
                    flags[name] = True
        section = implied.get("section", section)
        if flags["historical"] and span.label_ == "MALIGNANCY" and not rule_historical \
                and _ONGOING_AFTER.match(text, span.end_char, sentence.end_char):
            flags["historical"] = False
        if span.label_ == "PRIOR_AUGMENTATION" and not any(
                flags[name] for name in ("negated", "historical", "hypothetical", "family")) \
                and _planned_augmentation(span, sentence, text):
            flags["hypothetical"] = True

        acuity = rule_acuity
        closing = _bracket_closing(span, sentence, text)
        acuity_modifier = _nearest(span, [
            modifier for modifier in modifiers
            if (closing is None or span.doc[modifier.modifier_span[0]].idx < closing)
            and not _ages_the_next(modifier, span) and not _age_not_stated_after(modifier, span, text)], ACUITY)
        if "INDETERMINATE_AGE" in categories:
            acuity = "indeterminate"
        elif acuity_modifier is not None:
            acuity = ACUITY[acuity_modifier.category]

        aetiology = rule_aetiology
        aetiology_modifier = _nearest(span, [modifier for modifier in modifiers if modifier.category == "AETIOLOGY"
                                             and not _anothers_word(span, modifier)], {"AETIOLOGY"})
        if aetiology_modifier is not None and (
                # "pathological fracture of L2 due to osteoporosis": a stated cause outranks the rule's
                not aetiology or aetiology_modifier.rule.metadata.get("overrides") == aetiology):
            aetiology = aetiology_modifier.rule.metadata["value"]
        if aetiology == "malignant" and _OSTEOPOROSIS_WITH.search(text, sentence.start_char, sentence.end_char):
            aetiology = "osteoporotic"  # the title of ICD-10 M80, not a tumour's fracture

        corrected_modifier = _nearest(span, modifiers, {"CORRECTED"})
        corrected = corrected_modifier.rule.metadata["value"] if corrected_modifier is not None else ""
        if span.label_ == "INFECTION" and not corrected and "HEALED" in categories:
            corrected = "resolved"  # "healed discitis-osteomyelitis": the infection is over
        if span.label_ in ("INFECTION", "COAGULOPATHY") and not corrected and _RESOLVED_BEFORE.search(
                text, max(text.rfind("\n", 0, span.start_char) + 1, span.start_char - 50), span.start_char):
            corrected = "resolved"
        if span.label_ not in ("FRACTURE", "OEDEMA"):
            acuity = ""  # the age words describe fractures; on other concepts they mean other things
        if span.label_ in ("ANTICOAGULANT", "MALIGNANCY") and corrected_modifier is not None \
                and corrected_modifier.rule.metadata.get("course_over"):
            # a course that is over: "finished 10 days enoxaparin", "completed her warfarin course",
            # "apixaban stopped 2023"; "prostate Ca in remission", a cancer treated and over (not denied)
            flags["historical"] = True
            if span.label_ == "MALIGNANCY":
                corrected = ""
        if corrected == "resolved" and span.label_ not in CORRECTABLE:
            # "marrow oedema has resolved", "back pain resolved": no longer present
            flags["negated"] = True
        med_status = ""
        if span.label_ == "ANTICOAGULANT":
            # the hold words ("withheld", "stopped") are CORRECTED rules, which a coagulopathy and
            # an infection read too; on an anticoagulant they are its status, the nearest one counts
            med_modifier = _nearest(span, [modifier for modifier in modifiers if modifier.category != "CORRECTED"
                                           or modifier.rule.metadata["value"] == "held"],
                                    {"MED_HELD", "MED_CONTINUED", "CORRECTED"})
            if med_modifier is not None:
                med_status = "continued" if med_modifier.category == "MED_CONTINUED" else "held"
            if corrected == "held":
                corrected = ""

        base = {
            "concept": span.label_,
            "start": span.start_char,
            "end": span.end_char,
            "lexical_variant": text[span.start_char:span.end_char],  # span.text, without joining its tokens
            "sentence_start": sentence.start_char,
            "sentence_end": sentence.end_char,
            "section": section,
            **flags,
            "levels": levels,
            # "a new L2 fracture": new is acute (SPEC §4), unless an age is written; not in
            # "no new fracture", "?new fracture", "risk of new adjacent fractures", nor in an
            # indication's "new T12 and L2 compression fractures on XR 9/3" (new on that study;
            # the question is their age)
            "acuity": acuity or ("acute" if span.label_ == "FRACTURE" and "NEW" in categories and not (
                flags["negated"] or flags["uncertain"] or flags["hypothetical"] or seen_before) else ""),
            "aetiology": aetiology or "",
            "scope": rule_scope or "",
            "lab": "",
            "value": None,
            "unit": "",
            "corrected": corrected if span.label_ in CORRECTABLE else "",
            "med_status": med_status,
            # "new since 2019, age indeterminate": an explicit age outranks "new"
            "new": "NEW" in categories and acuity not in ("chronic", "healed", "indeterminate") and not seen_before,
        }
        if rule_also:
            # "epidural abscess" is a local infection and epidural disease at once
            return [base, {**base, "concept": rule_also, "scope": "", "corrected": ""}]
        if not rule_labs:
            return [base]
        # a measured value is not denied by a cue about a diagnosis beside it: "Plt 171 -
        # thrombocytopenia excluded (EDTA clumping)"
        return [{**base, "negated": False, "historical": base["historical"] or lab.superseded,
                 "hypothetical": base["hypothetical"] or lab.threshold, "lab": lab.lab,
                 "corrected": "" if lab.threshold else base["corrected"],
                 "value": lab.value, "unit": lab.unit} for lab in rule_labs]
