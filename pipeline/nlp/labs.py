"""Coagulation lab values: INR, prothrombin time and platelet counts.

Written forms understood: ``INR 1.9``, ``INR: 2.4 (H)``, ``INR:2.4``,
``INR of 3.1``, ``INR this morning is 1.1``, ``PT/INR 14.2/1.3``,
``PT / PTT / INR:19.1/31.6/1.7``, ``INR(PT)-1.2``, ``Plt Ct-593``, ``PT 14.2 s``,
``Plt 42``, ``Plt42``, ``platelets 38 x10^9/L``, ``PLT 120 K/uL``, ``platelet count of 45,000``,
``Platelets 1.89 lakh/cumm``, ``INR 2,9`` (a decimal comma), ``Thrombocytes 42.000/mm3``,
tabular lab lines
(``Platelets     42   L   150-400``), trends (``Plt 68 (8/2) -> 57 (8/4) -> 44 (today)``:
three values, the last one the latest, the others ``superseded``) and flowsheets, rows under a
head of days (``04/08  05/08  06/08`` over ``Plt  233  208  214``: the latest day's value is the
latest), and lines that each start with their day (``13/01  Plt 38`` over ``15/01  Plt 61``: the
latest day's). A threshold (``proceed only if plt >50``, ``INR <= 1.5``, ``until INR falls below 2.5``)
is a value ``threshold``, not one measured. Given the note's date, a
value quoted from an earlier day after today's is ``superseded`` too (``Bloods today: INR 1.2
(INR 2.4 in clinic 22/05)``).

Platelet counts are normalised to ×10⁹/L (``45,000``, ``45 K/uL`` and
``0.45 lakh/cumm`` are all 45).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections import Counter
from dataclasses import dataclass, replace

# What may stand between a lab's name and its value: white space and joining words, the
# white space once between two of them ("(\s* word \s*)*" can split a run of spaces in
# two at every word, and a line with many such words and no value took the regex
# exponential time: "INR  of  of  of ..." ten times over took 5 s)
# ("INR(PT)-1.2" and "Plt Ct-593" are how MIMIC's discharge summaries list labs)
# ("INR this morning is 1.1", "INR on admission was 3.2": when the value was taken; "INR trend: 3.4")
# (a table row's unit in brackets: "Plt (x10^9/L)     171      164")
# (a checklist's dot leader, the whole run at once: "INR ............ 1.1 today")
_JOIN = (r"\s*(?:(?:[:=#-]|\.{2,}(?!\.)|\bof\b|\bis\b|\bwas\b|\bnow\b|\btoday\b|\blevel\b|\bvalue\b|\bresult\b"
         r"|\bthis\s+(?:morning|am|afternoon|evening)\b|\byesterday\b|\btonight\b|\bon\s+(?:admission|arrival)\b"
         r"|\bchecked\b|\btrend(?:ed|ing|s)?\b|\(\s*[HL]\s*\)|\(\s*PT\s*\)"
         r"|\((?:x\s*)?10\s*(?:\^|e)?\s*[39]\s*/\s*u?L\)|\(\s*K\s*/\s*uL\s*\))\s*)*")
_DECIMAL = r"\d+(?:\.\d+)?"
_NUMBER = rf"(?P<value>\d{{1,3}}(?:,\d{{3}})+|{_DECIMAL})"
#: After a value: not more of a number or of a list of values ("19.1/31.6" is not 19)
_END = r"(?![\d/]|\.\d)"

PT_INR = re.compile(
    r"\bPT\s*/\s*INR\b" + _JOIN + rf"(?P<pt>{_DECIMAL})\s*(?:s(?:ec)?\b)?\s*/\s*(?P<inr>{_DECIMAL})",
    re.IGNORECASE,
)
# "PT / PTT / INR:19.1/31.6/1.7": the values in the order of the names
PT_PTT_INR = re.compile(
    r"\bPT\s*/\s*PTT\s*/\s*INR\b" + _JOIN + rf"(?P<pt>{_DECIMAL})\s*/\s*{_DECIMAL}\s*/\s*(?P<inr>{_DECIMAL}){_END}",
    re.IGNORECASE,
)
# An INR is never in the thousands: "INR 2,9" (a decimal comma, as much of Europe and Latin
# America writes it) is 2.9
INR = re.compile(r"\bINR\b" + _JOIN + r"(?P<value>\d+(?:[.,]\d+)?)" + _END + r"(?!,\d)", re.IGNORECASE)
PT = re.compile(
    r"\b(?:PT|prothrombin\s+time)\b(?!\s*/)" + _JOIN + _NUMBER
    # "Pt: 71 M", "pt 68 yo", "Pt: 76 y.o.": the patient's age, not a prothrombin time
    + r"(?!\s*(?:[MF]\b|y[./]?\s?o\b|yrs?\b|years?\b|-?\s*year|male\b|female\b|man\b|woman\b))"
    + r"\s*(?P<unit>s(?:ec(?:onds)?)?\b)?(?![\w/%])",
    re.IGNORECASE,
)
PLATELETS = re.compile(
    r"\b(?:platelets?(?:\s+count)?|plts?(?:\s+(?:count|ct))?|thrombocytes?(?:\s+count)?)" + _JOIN + _NUMBER
    # not a day: "Platelets:\n  13/01  Plt 38"
    + r"(?!\d|[/.]\d)(?:\s*(?P<unit>(?:x|×)\s*10\s*(?:\^|e|\*\*)?\s*(?:9|⁹)\s*/\s*L|x\s*10\s*(?:\^|e)?\s*3\s*/\s*(?:uL|µL|mm3)|"
    r"(?:x|×)\s*10\s*(?:\^|e|\*\*)?\s*(?:4|⁴)\s*/\s*(?:uL|µL|μL|mm3)|"
    r"K\s*/\s*(?:uL|µL|mm3)|10\^9/L|thou(?:sand)?\s*/\s*(?:uL|µL)|/\s*(?:uL|µL|mm3|cumm)|K\b|"
    r"lakhs?(?:\s*/\s*(?:cumm|cu\.?\s*mm|mm3|uL|µL))?))?",
    re.IGNORECASE,
)


# A threshold: a lab, a comparison and a value, a few words of what the value must do between them
# ("IR require Plt >= 50 and INR <= 1.5", "until INR falls below 2.5", "platelets must be > 50")
THRESHOLD = re.compile(
    r"\b(?P<lab>INR|plts?|platelets?|platelet\s+count)"
    r"(?:\s+(?:must|needs?|should|to|be|recovers?|recovered|rises?|falls?|drops?|is|are|remains?|stays?|"
    r"consistently|count|ct)){0,3}"
    r"\s*(?:<=|>=|=<|=>|<|>|\u2264|\u2265|\b(?:below|above|under|over|less\s+than|greater\s+than|more\s+than)\b)"
    r"\s*(?P<value>\d{1,3}(?:,\d{3})+|\d+(?:[.,]\d+)?)(?![\d/]|\.\d)"
    r"(?:\s*(?P<unit>K\b|k\b|lakhs?\b|(?:x|\u00d7)\s*10\s*\^?\s*9\s*/\s*L\b))?",
    re.IGNORECASE)

# The next value of a trend: "-> 57 (8/4)", "→ INR 1.4", with the arrow starting the next line
# ("plt 12 (03/02) -> 41 (10/02)\n-> 88 today"), and after when the value before was taken ("Plt 46
# on adm (08/09) -> 50 today")
_TREND_NEXT = re.compile(r"[ \t]*(?:(?:(?:on|at)[ \t]+)?(?:adm(?:ission|itted)?|arrival|presentation|baseline|"
                         r"yesterday|initially|pre-?op|post-?op)\.?[ \t]*)?"
                         r"(?:\([^()\n]{1,25}\)[ \t]*)?(?:\n[ \t]*)?(?:-+>|→|=>)[ \t]*\n?[ \t]*"
                         r"(?:(?:INR|plts?|platelets?)\b[ \t:]*)?"
                         r"(?P<value>\d{1,3}(?:,\d{3})+|\d+(?:[.,]\d+)?)" + _END, re.IGNORECASE)


@dataclass(frozen=True)
class LabValue:
    lab: str          # "INR", "PT" or "platelets"
    value: float
    unit: str
    start: int
    end: int
    superseded: bool = False  # a later value of the lab is written after it (a trend, a quote)
    threshold: bool = False  # a limit a value is held to ("plt >50"), not a value measured


def _number(text: str) -> float:
    return float(text.replace(",", ""))


_PER_10000 = re.compile(r"10\s*(?:\^|e|\*\*)?\s*(?:4|⁴)\s*/")


def _platelets(value: float, unit: str | None = None) -> float:
    """Counts written per microlitre (45,000) become ×10⁹/L (45); in lakhs (Indian
    reports: "1.89 lakh/cumm" is 189,000 per microlitre) they are hundreds; in tens of
    thousands per microlitre (Japanese reports: "PLT 16.4 x10^4/uL" is 164,000) tens."""
    if unit and unit.lower().startswith("lakh"):
        return value * 100.0
    if unit and _PER_10000.search(unit):
        return value * 10.0
    return value / 1000.0 if value >= 1000 else value


def _reading(lab: str, raw: str, unit: str | None = None) -> float | None:
    """An INR's, a prothrombin time's or a platelet count's value as written, or None when it
    cannot be one."""
    if lab == "PT":
        value = _number(raw)
        return value if 5 <= value <= 200 else None  # seconds; "PT 3x/week" is physiotherapy
    if lab == "INR":
        value = float(raw.replace(",", "."))
        return value if value < 20 else None  # an INR above 20 is a reading error or another number
    value = _platelets(_number(raw), unit)
    return round(value, 3) if 0 < value < 3000 else None


def find_lab_values(text: str, noted: _dt.date | None = None) -> list[LabValue]:
    """Every INR, PT and platelet value in ``text``, in order of position (``noted``: the
    note's date, for :func:`_quoted_earlier`)."""
    found: list[LabValue] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    for pattern in (PT_PTT_INR, PT_INR):
        for match in pattern.finditer(text):
            if free(*match.span()):
                pt, inr = match.group("pt"), match.group("inr")
                found.append(LabValue("PT", _number(pt), "s", match.start(), match.end()))
                found.append(LabValue("INR", _number(inr), "", match.start(), match.end()))
                taken.append(match.span())
    for match in INR.finditer(text):
        if free(*match.span()):
            value = _reading("INR", match.group("value"))
            if value is not None:
                found.append(LabValue("INR", value, "", match.start(), match.end()))
                taken.append(match.span())
                _trend(text, match.end(), "INR", found, taken)
                _columns(text, match.end(), "INR", found, taken)
    for match in PT.finditer(text):
        if free(*match.span()):
            value = _reading("PT", match.group("value"))
            if value is not None:
                found.append(LabValue("PT", value, "s", match.start(), match.end()))
                taken.append(match.span())
                _columns(text, _value_end(match), "PT", found, taken)
    for match in PLATELETS.finditer(text):
        if free(*match.span()):
            value = _reading("platelets", match.group("value"), match.group("unit"))
            if value is not None:
                found.append(LabValue("platelets", value, "10^9/L", match.start(), match.end()))
                taken.append(match.span())
                _trend(text, match.end(), "platelets", found, taken, match.group("unit"))
                _columns(text, _value_end(match), "platelets", found, taken, match.group("unit"))
    found.sort(key=lambda lab: (lab.start, lab.lab))
    found = _dated_rows(text, found, noted)
    found = _quoted_earlier(text, found, noted) if noted is not None else found
    thresholds = _thresholds(text, free)
    return sorted(found + thresholds, key=lambda lab: (lab.start, lab.lab)) if thresholds else found


def _thresholds(text: str, free) -> list[LabValue]:
    """The thresholds (:data:`THRESHOLD`) in ``text`` where no value was read (``free``)."""
    found = []
    for match in THRESHOLD.finditer(text):
        if free(*match.span()):
            lab = "INR" if match.group("lab").upper() == "INR" else "platelets"
            value = _reading(lab, match.group("value"), match.group("unit"))
            if value is not None:
                found.append(LabValue(lab, value, "" if lab == "INR" else "10^9/L", match.start(), match.end(),
                                      threshold=True))
    return found


def _value_end(match: re.Match) -> int:
    """Where a value and its unit end, without the white space a missing unit's pattern takes."""
    return match.end("unit") if match.group("unit") else match.end("value")


def _trend(text: str, end: int, lab: str, found: list[LabValue], taken: list[tuple[int, int]],
           unit: str | None = None) -> None:
    """The values of a trend after its first (``found[-1]``): each one supersedes the one before."""
    while (step := _TREND_NEXT.match(text, end)) is not None:
        value = _reading(lab, step.group("value"), unit)
        if value is None:
            return
        before = found[-1]
        found[-1] = replace(before, superseded=True)
        found.append(LabValue(lab, value, before.unit, step.start("value"), step.end("value")))
        taken.append((step.start("value"), step.end("value")))
        end = step.end()


# The next cell of a table's row, two spaces or a tab after the one before: a value, or a dash
# for a day without one ("INR     1.1     -       1.0")
_NEXT_CELL = re.compile(r"(?:[ \t]{2,}|\t)(?P<cell>-{1,2}|\u2013|(?P<value>\d{1,3}(?:,\d{3})+|\d+(?:[.,]\d+)?))(?=[ \t]|$)",
                        re.MULTILINE)
# A table's head of days, one per column, a time after each or not: "            04/08    05/08
# 06/08    07/08", "2025-09-22   2025-10-06", "Lab   02/09/25 2230   02/10/25 0455", "Date   01.03.
# 02.03." (a day with dots ends with one: "1.8   1.7" is a row of values)
_HEAD_DAY = (r"(?:\d{1,2}/\d{1,2}(?:/(?:19|20)?\d\d)?|\d{1,2}\.\d{1,2}\.(?:(?:19|20)?\d\d)?|(?:19|20)\d\d-\d\d-\d\d)"
             r"(?:[ \t]+(?:\d{4}|\d{1,2}:\d\d)(?![/.\d]))?")
_DAYS_HEAD = re.compile(rf"[ \t]*(?:[A-Za-z][^\n]{{0,25}}?[ \t]{{2,}})?(?P<days>(?:{_HEAD_DAY}(?:[ \t]+|$)){{2,}})[ \t]*$")
_ISO_DAY = re.compile(r"((?:19|20)\d\d)-(\d\d)-(\d\d)")
#: Lines a table's head may be above a row of it
_HEAD_REACH = 12


def _columns(text: str, end: int, lab: str, found: list[LabValue], taken: list[tuple[int, int]],
             unit: str | None = None) -> None:
    """The other cells of a table's row whose first value is ``found[-1]``, under a head of days
    (:data:`_DAYS_HEAD`), one cell per day: the latest day's value is the value, the others are
    ``superseded``. "            04/08    05/08    06/08    07/08\nPlt  233  208  214  226": 226
    is the latest; with the days the other way round ("07/08  06/08 ..."), the first."""
    cells = []
    position = end
    while (cell := _NEXT_CELL.match(text, position)) is not None:
        cells.append(cell)
        position = cell.end()
    if not any(cell.group("value") for cell in cells):
        return
    head = _days_head(text, text.rfind("\n", 0, end) + 1)
    if head is None or len(head) != len(cells) + 1:
        return
    first = found[-1]
    row = [first]
    for cell in cells:
        if cell.group("value"):
            reading = _reading(lab, cell.group("value"), unit)
            if reading is None:
                return
            row.append(LabValue(lab, reading, first.unit, cell.start("value"), cell.end("value")))
    latest = len(row) - 1 if _latest(head) else 0  # the last value written, past a dash for a day without one
    found[-1] = replace(first, superseded=latest != 0)
    for index, value in enumerate(row[1:], start=1):
        found.append(replace(value, superseded=index != latest))
        taken.append((value.start, value.end))


def _latest(days: list[tuple[int, int, int]]) -> int:
    """The index of the latest of ``days`` (sort keys, in the order written), by the direction of
    most steps (a table over the new year has one step back): the last, or the first."""
    steps = [later > earlier for earlier, later in zip(days, days[1:])]
    return len(days) - 1 if sum(steps) * 2 >= len(steps) else 0


def _days_head(text: str, line_start: int) -> list[tuple[int, int, int]] | None:
    """The days of the table head above a row starting at ``line_start``, as (year, month, day)
    sort keys (year 0 when not written), day/month unless a part only fits month/day; None when
    there is none."""
    start = line_start
    for _ in range(_HEAD_REACH):
        if start == 0:
            return None
        start = text.rfind("\n", 0, start - 1) + 1
        line_end = text.find("\n", start)
        line = text[start:len(text) if line_end < 0 else line_end]
        if not line.strip():
            return None
        found = _DAYS_HEAD.fullmatch(line)
        if found is not None:
            return _day_keys(found["days"])
    return None


def _day_keys(days: str) -> list[tuple[int, int, int]]:
    """The days written in ``days``, in order, as (year, month, day) sort keys (year 0 when not
    written): ISO days, or day/month unless a day only fits month/day."""
    iso = [tuple(int(part) for part in day.groups()) for day in _ISO_DAY.finditer(days)]
    if iso:
        return iso
    parts = [(int(day["first"]), int(day["second"]), int(day["year"] or 0)) for day in re.finditer(DAY, days)]
    month_first = any(second > 12 for _, second, _ in parts)
    return [(year % 100, first, second) if month_first else (year % 100, second, first)
            for first, second, year in parts]


# A line that starts with its day: "  13/01  Plt 38", "  03/05 23:15   INR 1.9", "7/16: INR 2.1"
_DAY_LINE = re.compile(rf"[ \t]*(?P<day>{_HEAD_DAY})[ \t]*[:,-]?[ \t]")


def _dated_rows(text: str, found: list[LabValue], noted: _dt.date | None) -> list[LabValue]:
    """``found`` with the values of a lab in lines that each start with their day (a run of such
    lines, :data:`_DAY_LINE`) superseded but the latest day's: "13/01  Plt 38\n15/01  Plt 61\n
    16/01  Plt 74" -> 74; newest first ("17/03/25  INR 2.6\n24/02/25  INR 3.1") -> 2.6. A day
    without its year is in the year up to ``noted``, when given."""
    runs: dict[tuple[int, str], list[tuple[str, int]]] = {}
    line_starts = [text.rfind("\n", 0, lab.start) + 1 for lab in found]
    per_line = Counter(zip(line_starts, (lab.lab for lab in found)))
    run_of: dict[int, int] = {}  # a dated line's start -> its run's first line's
    for index, (lab, line_start) in enumerate(zip(found, line_starts)):
        if lab.superseded or lab.threshold or per_line[line_start, lab.lab] > 1:
            continue  # not a line's one value: "01/09 182 | 16/09 141 | 18/09 Plt 88"
        day = _DAY_LINE.match(text, line_start, lab.start)
        if day is None:
            continue
        runs.setdefault((_run_start(text, line_start, run_of), lab.lab), []).append((day["day"], index))
    for rows in runs.values():
        if len(rows) < 2:
            continue
        # the run's days read together (one "12/30" makes every day month first)
        days = _day_keys("  ".join(day for day, _ in rows))
        if noted is not None:
            days = [(year or noted.year % 100 - ((month, date) > (noted.month, noted.day)), month, date)
                    for year, month, date in days]
        latest = rows[_latest(days)][1] if len(days) == len(rows) else rows[-1][1]
        for _, index in rows:
            if index != latest:
                found[index] = replace(found[index], superseded=True)
    return found


def _run_start(text: str, line_start: int, run_of: dict[int, int]) -> int:
    """The start of the first of the dated lines (:data:`_DAY_LINE`) just above and including the
    one at ``line_start``; ``run_of`` remembers the lines already walked, so a run is walked once."""
    lines = []
    run_start = line_start
    while run_start not in run_of and run_start > 0:
        lines.append(run_start)
        previous = text.rfind("\n", 0, run_start - 1) + 1
        if not _DAY_LINE.match(text, previous, run_start - 1):
            break
        run_start = previous
    run_start = run_of.get(run_start, run_start)
    for line in lines:
        run_of[line] = run_start
    return run_start


def day_pattern(separator: str = "[/.]") -> str:
    """A day in digits, day/month or month/day, its year optional ("22/05", "14.03", "30/06/2025"),
    with the groups :func:`day_readings` reads."""
    return (rf"(?P<first>\d{{1,2}}){separator}(?P<second>\d{{1,2}})(?:{separator}(?P<year>(?:19|20)?\d\d))?\b"
            rf"(?!{separator}\d|:\d)")


#: ``day_pattern()``: "/" or "." between the parts
DAY = day_pattern()
# A day written right after a lab value, where it was measured: "(INR 2.4 in clinic 22/05 - now
# within the limit)", "Plt 88 (on 14/03)", "INR 3.0 at the anticoag clinic 30/06/2025"
_DATE_AFTER = re.compile(
    r"[ \t]*[(,]?[ \t]*(?:(?:in|at|from|on|dated|taken|drawn|checked|done)[ \t]+)?"
    r"(?:(?:the[ \t]+)?(?:anticoag(?:ulation)?[ \t]+clinic|clinic|ED|A&E|GP|ward|admission|pre-?op|"
    r"pre-?assessment|lab)[ \t]+)?(?:on[ \t]+)?"
    rf"{DAY}", re.IGNORECASE)
# A day written with a slash ("16/04", "04/16/2025"; not a decimal "1.9")
_DAY = re.compile(rf"\b{day_pattern('/')}")
# A day written right before a lab value, in brackets or after a comma or a colon: "INR 1.2
# (03/04: INR 2.8)", "(on 14/03 Plt 88)", "Previous: 06/06 INR 2.9, 30/05 INR 3.2"
_DAY_BEFORE = re.compile(rf"(?:^|[(,;:]|[ \t])[ \t]*(?:on[ \t]+)?{day_pattern('/')}[ \t]*[:,-]?[ \t]*$")
# A lab named right after a day, whose day it is
_LAB_AFTER_DAY = re.compile(r"[ \t]*[:,-]?[ \t]*(?:INR|PT|plts?|platelets?)\b", re.IGNORECASE)
# Today's value: "Bloods today 07:10: ... INR 1.2", "INR 1.2 this morning"
_TODAY = re.compile(r"\b(?:today|this\s+(?:morning|am|a\.m\.)|tonight)\b", re.IGNORECASE)
# A heading line of a few words and a day, over the values measured on it: "Labs 03/20/2025"
_DAY_HEADING = re.compile(rf"[ \t]*[A-Za-z][A-Za-z ]{{0,20}}?[ \t]+(?:on[ \t]+)?{day_pattern('/')}[ \t]*:?[ \t]*$")


def _quoted_earlier(text: str, found: list[LabValue], noted: _dt.date) -> list[LabValue]:
    """``found`` with each value dated before ``noted`` and written after today's value of the
    same lab superseded: "Bloods today: INR 1.2 (INR 2.4 in clinic 22/05)" -> 1.2 is the latest.
    Not after a value of unknown day ("INR 2.8 on arrival -> vitamin K; INR 1.3 on 10/31":
    1.3 is the latest), and alone in its note it is the latest value there is ("INR 2.6 at
    anticoag clinic 28/02")."""
    if len({lab.lab for lab in found}) == len(found):
        return found  # no lab written twice
    today: set[str] = set()
    for index, lab in enumerate(found):
        if lab.lab in today:
            if _dated_before(text, lab.end, noted) or _day_before_earlier(text, lab.start, noted):
                found[index] = replace(lab, superseded=True)
        elif not lab.superseded and _of_today(text, lab, noted) and not _dated_before(text, lab.end, noted):
            today.add(lab.lab)
    return found


MONTH_NAMES = "january february march april may june july august september october november december".split()
MONTHS = [name[:3] for name in MONTH_NAMES]
#: A month written only as a month is, in full or cut short ("Mar", "Sept"; not "Maybe")
MONTH_WORD = "|".join("sept?(?:ember)?" if name == "september" else f"{name[:3]}(?:{name[3:]})?" if name[3:] else name
                      for name in MONTH_NAMES)


def earlier_month(found: re.Match, noted: _dt.date) -> bool:
    """Whether ``found``'s ``month`` (and ``year``, if written, two digits or four; else the latest
    not after ``noted``) is before ``noted``'s month."""
    month = MONTHS.index(found["month"][:3].lower()) + 1
    year = found["year"]
    year = int(year) + (2000 if len(year) == 2 else 0) if year else noted.year - (month > noted.month)
    return (year, month) < (noted.year, noted.month)


# A month written right after a value, in brackets or after "in": "INR 1.7 (Dec), INR 3.8 (Jan)",
# "Plt 88 in January 2025" (not ", may")
_MONTH_AFTER = re.compile(
    r"[ \t]*(?:\([ \t]*|,?[ \t]*(?:in|from|during)[ \t]+)(?:(?:early|mid|late)[ \t-]*)?"
    rf"(?P<month>{MONTH_WORD})\b\.?(?:[ \t]+'?(?P<year>(?:19|20)?\d\d)\b)?",
    re.IGNORECASE)


def _dated_before(text: str, end: int, noted: _dt.date) -> bool:
    """Whether a day written right after a value (:data:`_DATE_AFTER`) is before ``noted``,
    whichever way it is read (day/month or month/day; a day without its year in the year up
    to the note's), or a month (:data:`_MONTH_AFTER`) before the note's own."""
    line_end = text.find("\n", end)
    limit = min(len(text) if line_end < 0 else line_end, end + 45)
    found = _DATE_AFTER.match(text, end, limit)
    if found is None:
        month = _MONTH_AFTER.match(text, end, limit)
        return month is not None and earlier_month(month, noted)
    if _LAB_AFTER_DAY.match(text, found.end()):
        return False  # the next value's day: "INR 1.2  (03/04: INR 2.8)"
    return before_either_way(found, noted)


def _day_before_earlier(text: str, start: int, noted: _dt.date) -> bool:
    """Whether a day written right before a value (:data:`_DAY_BEFORE`) is before ``noted``,
    whichever way it is read: "INR 1.2  (03/04: INR 2.8)"."""
    line_start = text.rfind("\n", 0, start) + 1
    found = _DAY_BEFORE.search(text, max(line_start, start - 20), start)
    return found is not None and before_either_way(found, noted)


def before_either_way(found: re.Match, noted: _dt.date, days: int = 0) -> bool:
    """Whether the day ``found`` (:func:`day_readings`) is more than ``days`` days before
    ``noted``, however it is read."""
    readings = day_readings(found, noted)
    return bool(readings) and all((noted - reading).days > days for reading in readings)


def day_readings(found: re.Match, noted: _dt.date) -> list[_dt.date]:
    """The dates a day written as ``first``/``second`` (and ``year``, if any) of ``found`` can
    be: day/month or month/day; a day without its year in the year up to ``noted``."""
    first, second, year = int(found["first"]), int(found["second"]), found["year"]
    readings = []
    for day, month in ((first, second), (second, first)):
        try:
            if year:
                readings.append(_dt.date(int(year) + (2000 if len(year) == 2 else 0), month, day))
            else:
                reading = _dt.date(noted.year, month, day)
                readings.append(reading if reading <= noted else reading.replace(year=noted.year - 1))
        except ValueError:
            continue
    return readings


def _of_today(text: str, lab: LabValue, noted: _dt.date) -> bool:
    """Whether a value's line says, before it or right after it, that it is today's, or gives
    the note's day before it ("Bloods 16/04: neutrophils 1.9, Plt 78 (Plt 44 on 14/04)"), or the
    value starts its line under a heading with the note's day ("Labs 03/20/2025\n  INR 1.2")."""
    line_start = text.rfind("\n", 0, lab.start) + 1
    if _TODAY.search(text, line_start, lab.start) is not None or \
            _TODAY.match(text[lab.end:lab.end + 16].lstrip(" \t(,")) is not None or \
            any(noted in day_readings(day, noted) for day in _DAY.finditer(text, line_start, lab.start)):
        return True
    if line_start == 0 or text[line_start:lab.start].strip():
        return False
    heading = _DAY_HEADING.match(text, text.rfind("\n", 0, line_start - 1) + 1, line_start - 1)
    return heading is not None and noted in day_readings(heading, noted)
