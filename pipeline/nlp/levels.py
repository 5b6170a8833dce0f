"""Vertebral levels: find them in text, expand ranges, link them to mentions.

Spellings understood (SPEC §3): ``L1``, ``L-1``, ``L 1``, ``Th12``/``D12``
(dorsal), ``LWK 1``/``BWK 12``/``HWK 5`` (German reports), ``T twelve``/``L
one`` (speech recognition), ``T12-L2``, ``T11-12``, ``T11 through L1``,
``L1/2``, ``T12/L1``, ``L1 and L2``, ``T7, T8 and T10``, ``first lumbar
(vertebra)``, ``twelfth thoracic``, ``thoracolumbar junction`` (T12, L1),
``lumbosacral junction`` (L5, S1), ``cervicothoracic junction`` (C7, T1).

MRI sequence names (``T1``/``T2``-weighted, ``T2 hyperintense``) and heart
sounds (``S1 S2``) are not levels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .sentences import MID_CLAUSE_ABBREVIATIONS, previous_word

REGION_SIZE = {"C": 7, "T": 12, "L": 5, "S": 5}
ORDER = [f"{region}{n}" for region in "CTLS" for n in range(1, REGION_SIZE[region] + 1)]
RANK = {level: index for index, level in enumerate(ORDER)}
UNSPECIFIED = "unspecified"

ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
    "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
    "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "6th": 6, "7th": 7, "8th": 8,
    "9th": 9, "10th": 10, "11th": 11, "12th": 12,
}
REGION_WORDS = {"cervical": "C", "thoracic": "T", "dorsal": "T", "lumbar": "L", "sacral": "S"}
JUNCTIONS = {
    "craniocervical": ["C1"], "cervicothoracic": ["C7", "T1"],
    "thoracolumbar": ["T12", "L1"], "lumbosacral": ["L5", "S1"],
}

# "HWK 5", "BWK 12", "LWK 1": German reports' vertebral bodies (Hals-, Brust-, Lendenwirbelkörper)
_REGION = r"(?:Th|[HBL]WK|[CTLSD])"
# Speech recognition writes numbers out: "T twelve", "L one" (thoracic and lumbar only: "vitamin C
# one daily" is not a level)
SPELLED = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
           "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_SPELLED = r"(?:Th|[TL])\s?-?\s?(?:" + "|".join(SPELLED) + r")\b"
# not a decimal: "femoral neck T -2.9" is a T-score
_ONE = rf"(?:{_REGION}\s?-?\s?(?:[1-9]|1[0-2])(?![0-9]|\.\d)|{_SPELLED})"
# A bare number after a level is a level only when no unit follows it: "L1, 2 and 3", not "fracture
# at L1, 2-3 mm retropulsion" nor "T12, 2 weeks"
_UNIT_AFTER = (r"(?:\s*(?:-|\u2013|to)\s*\d+(?:\.\d+)?)?\s*(?:mm|cm|%|\u00b0|degrees?|deg\b|x\b|/10|days?\b|d\b|weeks?|wks?|"
               r"months?|years?|yrs?|hours?|hrs?|h\b|units?|mg|kg|mls?\b|mcg|g\b|times)")
_TAIL = rf"(?:{_REGION}\s?-?\s?(?:[1-9]|1[0-2])(?![0-9]|\.\d)|(?:[1-9]|1[0-2])(?![0-9]|\.\d)(?!{_UNIT_AFTER})|{_SPELLED})"
_RANGE_SEP = r"\s*(?:-|–|/|to|through|thru)\s*"
_LIST_SEP = r"\s*(?:,\s*(?:and\s+|&\s*)?|and|&|or)\s*"
# A run of levels: "T7", "T11-L1", "T7, T8 and T10", "L1/2", "T11-12", "L4 and 5" (not the
# "s" of "St Luke's 2/3", nor the "D" of an incision and drainage: "abscess s/p I&D 2/28").
LEVEL_RUN = re.compile(
    rf"(?<![A-Za-z0-9'’])(?<![Ii]&)(?P<run>{_ONE}(?:(?:{_RANGE_SEP}|{_LIST_SEP}){_TAIL})*)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# After "T1"/"T2": the MRI sequence, not the vertebra ("T2 hyperintense", "T1-weighted", "marrow
# oedema without T1 change").
_SEQUENCE_AFTER = re.compile(
    r"\s*-?\s*(?:weighted|wi\b|w\b|signal|hyper|hypo|iso|stir|flair|images?|sequences?|fat|post|pre|marrow\s+signal|"
    r"bright|dark|dixon|map|relax|changes?\b|correlat|abnormalit|and\s+t[12]\b|/\s*(?:t[12]|stir|flair|pd)\b|,\s*t[12]\b)",
    re.IGNORECASE,
)
_PIECE = re.compile(rf"(?P<sep>{_RANGE_SEP}|{_LIST_SEP})?(?P<region>{_REGION})?\s?-?\s?"
                    rf"(?P<number>1[0-2]|[1-9]|{'|'.join(SPELLED)})", re.IGNORECASE)
WORD_LEVEL = re.compile(
    r"\b(?P<ordinal>" + "|".join(sorted(ORDINALS, key=len, reverse=True)) + r")\s+"
    r"(?P<region>cervical|thoracic|dorsal|lumbar|sacral)\b",
    re.IGNORECASE,
)
# "thoracolumbar junction", and its shorthand "TLJ", "TL junction" (T12/L1), "CTJ" (C7/T1);
# not "CT junction" (the modality's "CT")
_JUNCTION_SHORT = {"tlj": "thoracolumbar", "tl": "thoracolumbar", "ctj": "cervicothoracic",
                   "lsj": "lumbosacral", "ls": "lumbosacral"}
JUNCTION = re.compile(r"\b(?:(?P<name>" + "|".join(JUNCTIONS) + r")\s+junction|(?P<short>TL|LS)[\s-]+junction"
                      r"|(?P<abbreviation>TLJ|CTJ|LSJ))\b", re.IGNORECASE)


def junction_levels(match: re.Match) -> tuple[str, ...]:
    """The two levels either side of the junction a :data:`JUNCTION` match names."""
    name = match.group("name") or _JUNCTION_SHORT[(match.group("short") or match.group("abbreviation")).lower()]
    return tuple(JUNCTIONS[name.lower()])
# "T2 hyperintensity" style sequence words *before* the level: "on T2", "T1 and T2", "Sag T1, Sag T2".
_SEQUENCE_BEFORE = re.compile(
    r"(?:\bon|\band|/|\bsag(?:ittal)?|\bax(?:ial)?|\bcor(?:onal)?|\bfat[- ]sat(?:urated)?|"
    r"\b(?:low|high|intermediate|increased|decreased|reduced|abnormal|heterogeneous|homogeneous))\s*$",
    re.IGNORECASE)
_HEART = re.compile(r"\bS1\s*(?:,|and|&)?\s*S2\b", re.IGNORECASE)


# "D12" is the old dorsal name of T12, and "D2" day two after an operation: a dorsal level
# counts when written as a level ("of D12", "D11/D12", "D12 vertebra", "D8 and D10"), or as the
# key of a line about a vertebra ("D9: new pathological collapse", not "D2: mobilising, afebrile",
# "D1: epidural out, ankle oedema, compression stockings").
_DORSAL = re.compile(r"D\s?-?\s?\d", re.IGNORECASE)
_DORSAL_BEFORE = re.compile(r"(?:\b(?:of|at|involving|the|to|and|through|fracture|fx|wedging|collapse)\s+|[,/]\s*|#\s*)$",
                            re.IGNORECASE)
_DORSAL_AFTER = re.compile(
    r"\s*(?:[-–/]\s*(?:D|T|Th|L)?\s?-?\s?\d|(?:vertebra|vertebral|body|bodies|level|wedge|compression|collapse|"
    r"fracture|fx|deformity)\b|#)"
    r"|\s+(?:and|&|or|to)\s+D\s?-?\s?\d"
    r"|[ \t]*:[^\n]{0,80}?\b(?:collapse|fracture|fx|vertebra\w*|wedg\w*|infiltrat\w*|metasta\w*|deposits?|marrow|"
    r"stir|cement|retropuls\w*|height\s+loss|loss\s+of\s+height)\b", re.IGNORECASE)


@dataclass(frozen=True)
class LevelGroup:
    """Levels named together in the text (``T11-L1`` → T11, T12, L1), with their span."""

    start: int
    end: int
    levels: tuple[str, ...]


_REGION_NAMES = {"TH": "T", "D": "T", "HWK": "C", "BWK": "T", "LWK": "L"}


def normalise_region(region: str) -> str:
    region = region.upper()
    return _REGION_NAMES.get(region, region)


def valid(level: str) -> bool:
    return level in RANK


def expand(first: str, last: str) -> list[str]:
    """Every level from ``first`` to ``last`` inclusive (either order)."""
    a, b = sorted((RANK[first], RANK[last]))
    return ORDER[a:b + 1]


def sort_levels(levels) -> list[str]:
    """Craniocaudal order, duplicates removed, ``unspecified`` last."""
    unique = set(levels)
    ordered = sorted((level for level in unique if level in RANK), key=RANK.__getitem__)
    if UNSPECIFIED in unique:
        ordered.append(UNSPECIFIED)
    return ordered


def join_levels(levels) -> str:
    return ";".join(sort_levels(levels))


def _parse_run(run: str) -> list[str]:
    levels: list[str] = []
    region = None
    previous = None
    for piece in _PIECE.finditer(run):
        if piece.group("region"):
            region = normalise_region(piece.group("region"))
        if region is None:
            continue
        number = piece.group("number")
        level = f"{region}{SPELLED.get(number.lower()) or int(number)}"
        if not valid(level):
            # "T12-1" style tails that wrap into the next region are not written; skip
            continue
        separator = (piece.group("sep") or "").strip().lower()
        # "T11-L1", and "L1/2" or "T12/L1": the two levels on either side of a disc;
        # "T8/T12 fractures": two levels apart are a list
        if previous is not None and (separator in {"-", "–", "to", "through", "thru"}
                                     or (separator == "/" and abs(RANK[level] - RANK[previous]) == 1)):
            levels.extend(expand(previous, level))
        else:
            levels.append(level)
        previous = level
    return sort_levels(levels)


# What names a form's item, question or section: "item C3", "Q4", "section T2", "criterion L1"
_FORM_ITEM_BEFORE = re.compile(r"\b(?:items?|questions?|criteri(?:on|a)|sections?|fields?|boxes|box|forms?|CRF|page)"
                               r"[ \t]*(?:no\.?|number|#)?[ \t]*$", re.IGNORECASE)

# A dermatome is a nerve's strip of skin, not a vertebra: "herpes zoster, left T10 dermatome",
# "shingles in a T6 distribution", "Herpes zoster dermatome Th5 right", "right T9, single dermatome"
_DERMATOME_AFTER = re.compile(r"[ \t]*(?:(?:and|or|/|-)[ \t]*(?:Th|[CTLS])\d{1,2}[ \t]*)?"
                              r"(?:,[ \t]*(?:(?:a|one|single|same|two|adjacent|multiple)[ \t]+)?(?=dermatomes?\b))?"
                              r"(?:dermatom\w*|(?:dermatomal[ \t]+)?distribution)\b", re.IGNORECASE)
_DERMATOME_BEFORE = re.compile(r"\bdermatomes?[ \t]*:?[ \t]*(?:(?:left|right|L|R)[ \t]+)?$", re.IGNORECASE)

# A tumour's TNM T stage is no vertebra: "T3 N2c M0", "T2, NX, MX", "T4a N1", "stage T2", "history of
# T4 supraglottic squamous cell carcinoma"
_T_STAGES = frozenset({"T1", "T2", "T3", "T4"})
_TNM_AFTER = re.compile(r"[abcd]?[ \t]*,?[ \t]*(?:N[0-3X][abc]?\b|(?:(?:supra|sub)?glottic|squamous|adeno\w*|"
                        r"(?:small|non-small)[ \t-]+cell|transitional|urothelial)\b)", re.IGNORECASE)
_STAGE_BEFORE = re.compile(r"\b(?:stag(?:e|ed|ing)(?:[ \t]+(?:is|as|was))?|clinical(?:ly)?|pathologic(?:al)?)[ \t]*:?[ \t]*$",
                           re.IGNORECASE)


def find_level_groups(text: str, start: int = 0, end: int | None = None) -> list[LevelGroup]:
    """Every group of levels in ``text[start:end]``, offsets into ``text``."""
    end = len(text) if end is None else end
    window = text[start:end]
    groups: list[LevelGroup] = []
    heart = [match.span() for match in _HEART.finditer(window)]
    for match in LEVEL_RUN.finditer(window):
        run = match.group("run")
        levels = _parse_run(run)
        if levels and set(levels) <= {"T1", "T2"} and (
                _SEQUENCE_BEFORE.search(window[max(0, match.start() - 12):match.start()])
                or _SEQUENCE_AFTER.match(window, match.end())):
            continue
        if any(a <= match.start() < b for a, b in heart):
            continue
        if _DORSAL.match(run) and not (_DORSAL_BEFORE.search(window, 0, match.start())
                                       or _DORSAL_AFTER.match(window, match.end())):
            continue
        if _FORM_ITEM_BEFORE.search(window, max(0, match.start() - 12), match.start()):
            continue  # "F3 item C3 (adjacent-level fracture = No)": a form's item, not a vertebra
        if _DERMATOME_AFTER.match(window, match.end()) \
                or _DERMATOME_BEFORE.search(window, max(0, match.start() - 16), match.start()):
            continue
        if set(levels) <= _T_STAGES and (_TNM_AFTER.match(window, match.end())
                                        or _STAGE_BEFORE.search(window, max(0, match.start() - 20), match.start())):
            continue  # "stage T2, NX, MX transitional cell carcinoma", "T3 N2c M0": a tumour's T stage
        if levels:
            groups.append(LevelGroup(start + match.start(), start + match.end(), tuple(levels)))
    for match in WORD_LEVEL.finditer(window):
        level = f"{REGION_WORDS[match.group('region').lower()]}{ORDINALS[match.group('ordinal').lower()]}"
        if valid(level):
            groups.append(LevelGroup(start + match.start(), start + match.end(), (level,)))
    for match in JUNCTION.finditer(window):
        groups.append(LevelGroup(start + match.start(), start + match.end(), junction_levels(match)))
    groups.sort(key=lambda group: group.start)
    return groups


# Levels that a degenerative bridge or a fusion reaches, or a disc's, not the fracture beside it:
# "vertebra plana of T9 with bridging osteophytes between T8 and T10",
# "wedge deformity of L3 with anterior osteophytes bridging to L2".
_BRIDGED = re.compile(
    r"\b(?:bridg\w*|fused|fusion|ankylos\w*|osteophytes?|spurs?|spurring|syndesmophytes?)"
    r"[^\w.;,]+(?:\w+[^\w.;,]+){0,2}?(?:to|between|from|across)\s+$",
    re.IGNORECASE)
# A level a finding is measured against: "40% reduction of anterior height compared with L2";
# or counted from: "Level confirmed with fluoroscopy, counting up from the sacrum and down from C2".
_COMPARED = re.compile(
    r"\b(?:compared\s+(?:with|to)|relative\s+to|than|(?:counting|counted|numbered)\s+(?:\w+\s+)?(?:up\s+|down\s+)?from|"
    r"(?:up|down)\s+from)\s+(?:that\s+of\s+)?(?:the\s+)?"
    r"(?:(?:adjacent|normal|neighbouring|neighboring)\s+)?(?:vertebral\s+bod(?:y|ies)\s+(?:of\s+)?)?$",
    re.IGNORECASE)
# The level of a disc or a degenerative finding: "25% loss of height of L2 with mild disc
# bulge at L2-3", "canal stenosis at L4-5". Not a fracture's; but a disc compressing the
# thecal sac there is epidural disease at that level.
_DISC_LEVEL = re.compile(
    r"\b(?:dis[ck]s?(?:\s+(?:bulges?|bulging|protrusions?|herniations?|extrusions?|space|height|desiccation|"
    r"degeneration|disease))?|stenosis|(?:spondylo|antero|retro)listhesis|facet\s+(?:arthropathy|hypertrophy|joints?))"
    r"\s+(?:(?:is|are|seen|noted|present)\s+)?(?:at|of|in)\s+$",
    re.IGNORECASE)
#: The concepts a disc's level is never given to.
_NOT_AT_A_DISC = frozenset({"FRACTURE", "OEDEMA"})
# A disc named by its two levels before it: "L2/3 disc space narrowed", "L4-5 disc bulge", or a
# degenerative finding there: "old L3 # (2023), L4/5 stenosis". Not a fracture's level; oedema on
# both sides of the disc is at those levels ("The L4-L5 disc ... edema-type signal on both sides
# of the disc").
_DISC_AFTER = re.compile(r"\s*(?:intervertebral\s+)?(?:dis[ck]s?|interspaces?|(?:(?:central|canal|spinal|foraminal)\s+)?"
                         r"stenosis|(?:spondylo|antero|retro)listhesis|DDD|facet\s+(?:arthropathy|hypertrophy|joints?))\b",
                         re.IGNORECASE)
_NOT_BEFORE_A_DISC = frozenset({"FRACTURE"})


# An ICD-10 title's pair of vertebrae: "S22.080A Wedge compression fracture of T11-T12 vertebra"
# codes a fracture of one of the two, not of both (the note's other mentions say which)
_ICD_PAIR_AFTER = re.compile(r"[ \t]+vertebra\b", re.IGNORECASE)


def _icd_pair(text: str, group: LevelGroup) -> bool:
    """Whether ``group`` is an ICD-10 title's pair of vertebrae (above)."""
    return len(group.levels) == 2 and _ICD_PAIR_AFTER.match(text, group.end) is not None


def icd_pair_levels(text: str, start: int, end: int) -> set[str]:
    """The levels of the ICD-10 titles' pairs of vertebrae in ``text[start:end]``."""
    return {level for group in find_level_groups(text, start, end) if _icd_pair(text, group)
            for level in group.levels}


def _disc_barred(text: str, sentence_start: int, group: LevelGroup) -> frozenset:
    """The concepts a level group that names a disc or a degenerative finding's level, or an ICD
    title's pair of vertebrae, bars (see above)."""
    if _preceded_by(_DISC_LEVEL, text, sentence_start, group):
        return _NOT_AT_A_DISC
    if _icd_pair(text, group):
        return _NOT_BEFORE_A_DISC
    if len(group.levels) > 1 and _DISC_AFTER.match(text, group.end) is not None:
        return _NOT_BEFORE_A_DISC
    return frozenset()


# A vertebra's posterior elements and processes ("L1 TP #", "fracture of the left pedicle of L4",
# "C7 spinous process tip fracture", "TP/SP fractures": transverse and spinous processes, in
# capitals).
POSTERIOR_ELEMENT = (r"(?:(?:transverse|spinous|articular)\s+process(?:es)?(?:\s+tips?)?|TPs?|(?-i:SPs?)|pars(?:\s+interarticularis)?|"
                     r"lamina[er]?|laminar|facets?|pedicles?|posterior[\s-]+elements?|odontoid|dens|"
                     r"(?:inter|supra)spinous(?:\s+(?:ligaments?|ossification))?)")
_SURGERY = (r"(?:fusion|fused|[PTAX]LIF|PSF|PLF|ACDF|instrumentation|construct|hardware|(?:pedicle\s+)?screws?|rods?|cages?|"
            r"arthrodesis|laminectom(?:y|ies)|laminoplasty|(?:posterior\s+|spinal\s+)?(?:stabili[sz]ation|fixation))")
# The level of a posterior element or of a fusion or its hardware, not of a vertebral body:
# "acute L2 burst # + L1 TP #", "burst fracture (junctional level above L3-L5 fusion) with 40%
# height loss and 6 mm retropulsion", "pedicle screws at L3 and L4", "burst # (fused T4-T8)".
_ELSEWHERE_AFTER = re.compile(
    r"(?:[\s-]*(?:left|right|bilateral|bilat|posterior|anterior|posterolateral|instrumented|interbody|solid)\b)*"
    rf"[\s-]*(?:{POSTERIOR_ELEMENT}|{_SURGERY})\b", re.IGNORECASE)
_ELSEWHERE_BEFORE = re.compile(
    rf"\b(?:{POSTERIOR_ELEMENT}|{_SURGERY})(?:\s+(?:fractures?|fx|defects?))?\s+"
    r"(?:(?:at|of|from|across|spanning|involving)\s+)?(?:the\s+)?(?:(?:left|right|bilateral)\s+)?$", re.IGNORECASE)
# A range a curvature is measured across: "focal kyphosis of 14 degrees at L1-L3", "Cobb angle
# T12-L2". A single level after an angle is usually the fracture's ("angulation at T12").
_CURVATURE_BEFORE = re.compile(
    r"\b(?:(?:kyphosis|kyphotic|lordosis|lordotic|scoliosis|scoliotic)(?:\s+(?:angle|angulation|curve))?|angulation|"
    r"(?:Cobb\s+)?angle)(?:\s+(?:of|measuring|measures|measured\s+at)\s+\d+(?:\.\d+)?\s*(?:degrees|deg|°))?"
    r"\s+(?:(?:at|of|from|across|between|spanning|over|measured\s+(?:at|from|across))\s+)?(?:the\s+)?$", re.IGNORECASE)
#: The concepts the level of a posterior element, a fusion or a curvature is never given to.
_NOT_AT_ELSEWHERE = frozenset({"FRACTURE", "OEDEMA", "RETROPULSION"})


def _elsewhere(text: str, sentence_start: int, group: LevelGroup) -> bool:
    """Whether a level group names a posterior element, a fusion or a curvature's range."""
    return (_ELSEWHERE_AFTER.match(text, group.end) is not None
            or _preceded_by(_ELSEWHERE_BEFORE, text, sentence_start, group)
            or (len(group.levels) > 1 and _preceded_by(_CURVATURE_BEFORE, text, sentence_start, group)))


def _preceded_by(pattern: re.Pattern, text: str, sentence_start: int, group: LevelGroup) -> bool:
    return pattern.search(text, max(sentence_start, group.start - 40), group.start) is not None


# A range in brackets that says what was imaged, not where a finding is:
# "VFA (lateral spine T4-L4): wedge deformity of L1", "(images T11 through L3)",
# "(MRI in July stopped at T12)".
_COVERAGE = re.compile(r"\b(?:spine|lateral|imaged|imaging|images|views?|scan|scanned|coverage|VFA|DXA|DEXA|"
                       r"(?:stopped|ended|extended|reached|covered)\s+(?:at|to))\b",
                       re.IGNORECASE)


# A densitometry region: "L1-L3 T-score -1.9", "Lumbar spine L1-L4 BMD 0.812 g/cm2", a DXA
# table's row "L2-L4   0.742   -3.1" (a BMD in g/cm2 after it).
_DENSITOMETRY_AFTER = re.compile(r"\s*\)?\s*:?\s*(?:[TZ]-?\s?scores?|BMD|bone\s+(?:mineral\s+)?density|[01]\.\d{3}\b)",
                                 re.IGNORECASE)


# A location class of the Spinal Instability Neoplastic Score: "Location (T3-T10, rigid)",
# "junctional (T11-L1)".
_SINS_CLASS_BEFORE = re.compile(r"\b(?:location|(?:semi-?)?rigid|junctional|mobile(?:\s+spine)?)\s*[(:]\s*$",
                                re.IGNORECASE)
_SINS_CLASS_AFTER = re.compile(r"\s*,\s*(?:(?:semi-?)?rigid|junctional|mobile)\b", re.IGNORECASE)


# The range a count of fractures or a trial's criterion is over: "Number of vertebral fractures
# T4-L5: 2  (T12, L2)", "1-3 painful VCF T5-L5, symptom onset < 6 weeks -> L1", "I2  1 to 3 VCFs
# between T5 and L5 ... Y (L1)": where to look, not where a fracture is (its levels are the answer's)
_COUNTED_AFTER = re.compile(r"\s*:\s*\d{1,2}(?![\d.%])[ \t]*(?=\(|,|;|$)", re.MULTILINE)
_CRITERION_BEFORE = re.compile(
    r"\b(?:\d|one|two)\s*(?:-|to|\u2013)\s*(?:\d|two|three|four|five)\s+(?:(?:painful|osteoporotic|pathological|"
    r"vertebral|compression|acute|symptomatic)\s+)*(?:O?VCFs?|fractures?)\s+(?:(?:between|from|at|in)\s+)?$",
    re.IGNORECASE)


def _coverage(text: str, sentence_start: int, group: LevelGroup) -> bool:
    if _DENSITOMETRY_AFTER.match(text, group.end) or _SINS_CLASS_AFTER.match(text, group.end) \
            or _preceded_by(_SINS_CLASS_BEFORE, text, sentence_start, group):
        return True
    if len(group.levels) > 1 and (_COUNTED_AFTER.match(text, group.end)
                                  or _preceded_by(_CRITERION_BEFORE, text, sentence_start, group)):
        return True
    brackets = enclosing_brackets(text, group.start, group.end, max(sentence_start, group.start - 30),
                                  group.end + 10)
    return brackets is not None and \
        _COVERAGE.search(text, max(sentence_start, brackets[0] - 6), brackets[1]) is not None


def enclosing_brackets(text: str, start: int, end: int, lowest: int, highest: int) -> tuple[int, int] | None:
    """(opening, closing) of the brackets ``text[start:end]`` is written in, looked for between
    ``lowest`` and ``highest``; None when it is in none."""
    opening = text.rfind("(", lowest, start)
    if opening < 0 or ")" in text[opening:start]:
        return None
    closing = text.find(")", end, highest)
    return None if closing < 0 else (opening, closing)


# Clause boundaries inside a sentence: a mention takes levels from its own clause.
CLAUSE_BREAK = re.compile(r";|\bbut\b|\bwhereas\b|\bwhile\b|\bhowever\b|\balso\b|\badditionally\b|\bas well as\b|\. ", re.IGNORECASE)


def clause_bounds(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` into clauses (half-open offsets into ``text``).

    The full stop of some abbreviations ends no clause ("approx. 30% height loss").
    """
    bounds, cursor = [], start
    for match in CLAUSE_BREAK.finditer(text, start, end):
        if match.group() == ". " and previous_word(text, match.start()) in MID_CLAUSE_ABBREVIATIONS:
            continue
        bounds.append((cursor, match.start()))
        cursor = match.end()
    bounds.append((cursor, end))
    return bounds


# A finding in brackets right after a level, a few words in at most: "metastases at T4, T9
# (with pathological fracture), L3", "T9 (collapse)", "fracture of T9 (~40% height loss)"
_BRACKET_OPEN = re.compile(r"[ \t]*\([ \t]*(?:[\w/%~<>.-]+[ \t]+){0,2}$")
_BRACKET_CLOSE = re.compile(r"[^()\n]{0,40}?\)")
# ... or after a level a bone density scan leaves out: "L1-L4: L2 excluded (fracture)"
_LEFT_OUT = re.compile(r"[ \t]+(?:excluded|omitted|discounted|not[ \t]+(?:analy[sz]ed|included|used))[ \t]*$",
                       re.IGNORECASE)


def _bracket_after_level(text: str, sentence_start: int, sentence_end: int, start: int, end: int,
                         groups: list[LevelGroup]) -> tuple[int, int, tuple[str, ...], LevelGroup | None] | None:
    """(bracket start, bracket end, levels, the group when it is one level or a range) when the
    mention at ``start:end`` is in brackets that a level group ends right before, or before the
    word that leaves the level out (:data:`_LEFT_OUT`); None otherwise. Its level is that group's
    (a list's last item's), not one after the bracket."""
    opened = _BRACKET_OPEN.search(text, max(sentence_start, start - 30), start)
    if opened is None:
        return None
    closed = _BRACKET_CLOSE.match(text, end, sentence_end)
    if closed is None:
        return None
    bracket = text.index("(", opened.start())
    before = [group for group in groups if group.end <= bracket
              and (not text[group.end:bracket].strip() or _LEFT_OUT.match(text, group.end, bracket))]
    if not before:
        return None
    group = before[-1]
    # of a list ("T4, T9 (with ...)") the last item only; a range ("T4-T6 (...)") whole
    last_item = max(text.rfind(",", group.start, group.end), text.rfind(" and ", group.start, group.end))
    if last_item >= 0:
        tail = find_level_groups(text, last_item + 1, group.end)
        if tail:
            return bracket, closed.end(), tuple(tail[-1].levels), None
    return bracket, closed.end(), tuple(group.levels), group


def _between(a_start: int, a_end: int, b_start: int, b_end: int) -> tuple[int, int]:
    """The offsets of the text between two spans (an empty stretch when they overlap)."""
    if a_end <= b_start:
        return a_end, b_start
    if b_end <= a_start:
        return b_end, a_start
    return a_start, a_start


def _gap(a_start: int, a_end: int, b_start: int, b_end: int) -> int:
    start, end = _between(a_start, a_end, b_start, b_end)
    return end - start


def link_levels(text: str, sentence_start: int, sentence_end: int,
                mentions: list[tuple[int, int]], concepts: list[str] | None = None) -> list[list[str]]:
    """Link the level groups of a sentence to the mentions in it.

    Each level group goes to the nearest mention of its clause; a mention that
    receives no group takes the levels of the other mentions of its clause:
    those of its own concept when there are any (given ``concepts``, one per
    mention: "L3-4 discitis with L4 collapse (pathologic fracture)": the
    fracture → L4), else those of the mention it follows, or failing that the
    one after it ("acute L1 fracture with retropulsion": retropulsion → L1;
    "acute T6 fracture with retropulsion, and a new L2 fracture": → T6). A
    group overlapping a mention ("T12 compression fracture" matched whole)
    belongs to it; a group that osteophytes or a fusion reach ("bridging to T8
    and T10"), a level it is measured against ("height loss compared with L2"),
    or a range of what was imaged or measured ("VFA (lateral spine T4-L4)",
    "L1-L3 T-score -1.9", "Location (T3-T10, rigid)"), belongs to none; a disc's ("disc
    bulge at L2-3", "L2/3 disc space narrowed") to no fracture or oedema, and a posterior element's, a fusion's or a
    curvature's range ("L1 TP #", "above the L3-L5 fusion", "kyphosis of 14 degrees at
    L1-L3") to no fracture, oedema or retropulsion (given ``concepts``). A mention with no level of its clause and
    no donor takes the level that keys its sentence ("- T6: radiotherapy; no
    vertebroplasty because of the epidural component": → T6). Returns the
    levels of each mention, in the order given.
    """
    linked: list[set[str]] = [set() for _ in mentions]
    if not mentions:
        return []
    groups = [group for group in find_level_groups(text, sentence_start, sentence_end)
              if not (_preceded_by(_BRIDGED, text, sentence_start, group)
                      or _preceded_by(_COMPARED, text, sentence_start, group)
                      or _coverage(text, sentence_start, group))
              or any(_gap(start, end, group.start, group.end) == 0 for start, end in mentions)]
    if not groups:
        return [[] for _ in mentions]
    clauses = clause_bounds(text, sentence_start, sentence_end)
    key = _level_key(text, sentence_start, groups)

    def clause_of(position: int) -> int:
        for index, (a, b) in enumerate(clauses):
            if a <= position < b:
                return index
        return len(clauses) - 1

    mention_clause = [clause_of(start) for start, _ in mentions]
    own_list = [_own_level_list(text, start, end, groups) for start, end in mentions]
    bracketed = {i: found for i, (start, end) in enumerate(mentions)
                 if (found := _bracket_after_level(text, sentence_start, sentence_end, start, end, groups))}
    for group in groups:
        clause = clause_of(group.start)
        candidates = [i for i, c in enumerate(mention_clause) if c == clause
                      and not (i in bracketed and not bracketed[i][0] <= group.start < bracketed[i][1])]
        if any(anchor is group for _, _, _, anchor in bracketed.values()):
            # "L3 (old fracture, kyphoplasty 2015)": the bracket's level, and that of a mention
            # it is written right after ("osteoporotic fx T12 (kyphoplasty 2019)"), no other's
            for i in candidates:
                if mentions[i][1] <= group.start and not text[mentions[i][1]:group.start].strip():
                    linked[i].update(group.levels)
            continue
        if concepts is not None:
            barred = _disc_barred(text, sentence_start, group) \
                | (_NOT_AT_ELSEWHERE if _elsewhere(text, sentence_start, group) else frozenset())
            if barred:
                candidates = [i for i in candidates if concepts[i] not in barred
                              or _gap(*mentions[i], group.start, group.end) == 0]
        # a mention with a level of its own takes no level written apart from it and its list,
        # nor one that names a finding of its own: "treated L3 pathological fracture, lytic
        # T6/L1/ilium", "L4-5 radiculopathy - ESI 2023, L1 burst fracture 2018" (the lytic
        # lesions', the radiculopathy's), "pathologic T10 compression fracture and L3 lesion"
        own_finding = _OTHER_FINDING.match(text, group.end) is not None
        candidates = [i for i in candidates if own_list[i] is None or group in own_list[i]
                      or not (own_finding or _APART.search(text, *_between(*mentions[i], group.start, group.end)))]
        if own_finding and _OWN_TREATMENT.match(text, group.end):
            candidates = [i for i in candidates if own_list[i] is not None and group in own_list[i]
                          or concepts is not None and concepts[i] == "PRIOR_AUGMENTATION"]
        if not candidates:
            continue
        nearest = min(candidates, key=lambda i: (_gap(mentions[i][0], mentions[i][1], group.start, group.end),
                                                 mentions[i][0] < group.start))
        linked[nearest].update(group.levels)
    for index, (_, _, levels, _) in bracketed.items():
        linked[index].update(levels)
    own = [set(levels) for levels in linked]
    for index, levels in enumerate(linked):
        if levels:
            continue
        donors = [other for other, other_levels in enumerate(own)
                  if other != index and other_levels and mention_clause[other] == mention_clause[index]]
        if concepts is not None:
            same = [other for other in donors if concepts[other] == concepts[index]]
            if same:
                for other in same:
                    levels.update(own[other])
                continue
        # a finding without a level belongs to the fracture it follows: "acute T6 fracture
        # with 3 mm retropulsion, and a new L2 fracture" -> the retropulsion is at T6
        before = [other for other in donors if mentions[other][1] <= mentions[index][0]]
        if before:
            levels.update(own[max(before, key=lambda other: mentions[other][1])])
        elif donors:
            levels.update(own[min(donors, key=lambda other: mentions[other][0])])
        elif key is not None:
            levels.update(key.levels)
    return [sort_levels(levels) for levels in linked]


# What sets a level apart from a mention: punctuation or a line break between them
_APART = re.compile(r"[,;:()\[\]\n]|\s-+\s")
# A level's own treatment: "known T12 wedge and previous L2 cement", "T12 superior endplate compression
# deformity adjacent to the L1 augmentation, ~30% anterior height loss" - only a mention written
# right at the level takes it, or the treatment itself ("T12 cement from prior kyphoplasty")
_TREATMENT = r"cement(?:ed)?|kyphoplasty|vertebroplasty|augmentation"
_OWN_TREATMENT = re.compile(rf"[ \t]+(?:{_TREATMENT})\b", re.IGNORECASE)
# A level's own finding, written right after it: "L3 lesion", "T6 metastasis", "L2 haemangioma",
# or its own treatment
_OTHER_FINDING = re.compile(r"[ \t]+(?:vertebral\s+(?:body\s+)?)?(?:lesions?|metastas[ie]s|mets?|mass(?:es)?|deposits?"
                            r"|tumou?rs?|lytic|sclerotic|blastic|h(?:a)?emangiomas?|cysts?|nodules?|involvement"
                            rf"|infiltration|{_TREATMENT})\b", re.IGNORECASE)
# Between a mention and its own level: a few words ("L1 burst fracture", "fracture of L1"), or
# the level named as a place, over a wrapped line too ("the T11-T12 level\n with the old fracture",
# "fracture at the level of L1")
_OWN_LEVEL_GAP = re.compile(r"[ \t]+(?:(?:levels?|vertebrae?|bod(?:y|ies))\s+(?:with|of|containing)\s+"
                            r"(?:(?:the|an?|its)[ \t]+)?|at[ \t]+the[ \t]+levels?[ \t]+of[ \t]+)?"
                            r"(?:[A-Za-z/-]+[ \t]+){0,2}")
# Between the levels of one list: "T12, L1 and L2", "T6/T7", "L1 & L2", "T12 (40%) and L1 (25%)",
# "C5, T4 and the L1 and L2 vertebral bodies"
_LIST_JOIN = re.compile(r"\s*(?:\([^()]{0,30}\)\s*)?(?:,\s*(?:and\s+)?|and\s+|&\s*|/|or\s+)(?:the\s+)?")


def _own_level_list(text: str, start: int, end: int, groups: list[LevelGroup]) -> list[LevelGroup] | None:
    """The level group written right before or after a mention, with the groups listed with it
    ("compression fractures of T12, L1 and L2"), or None when no level is written next to it.
    Not a level that names a finding of its own ("wedge fracture T12 (mild) and L1 lesion")."""
    def joins(before: LevelGroup, after: LevelGroup, added: LevelGroup) -> bool:
        """Whether ``added`` (``before`` or ``after``) is listed with the other."""
        return _LIST_JOIN.fullmatch(text, before.end, after.start) is not None \
            and _OTHER_FINDING.match(text, added.end) is None

    for index, group in enumerate(groups):
        between = text[slice(*_between(start, end, group.start, group.end))]
        if between == "" or _OWN_LEVEL_GAP.fullmatch(between):
            first = last = index
            while first > 0 and joins(groups[first - 1], groups[first], added=groups[first - 1]):
                first -= 1
            while last + 1 < len(groups) and joins(groups[last], groups[last + 1], added=groups[last + 1]):
                last += 1
            return groups[first:last + 1]
    return None


# A level that heads its item: "- Th6: radiotherapy; no vertebroplasty because of the epidural
# component", "L2: old compression fracture ..." in a report written level by level
_ITEM_START = re.compile(r"[\s\-*•▪]*(?:\d{1,2}[.)]\s*)?")
_KEY_COLON = re.compile(r"\s*:")


def _level_key(text: str, sentence_start: int, groups: list[LevelGroup]) -> LevelGroup | None:
    """The level group that starts the sentence as a key ("T12: ..."), if any: the levels
    of every mention of the sentence that no level of its own clause reaches."""
    first = groups[0]
    if _ITEM_START.fullmatch(text, sentence_start, first.start) and _KEY_COLON.match(text, first.end):
        return first
    return None
