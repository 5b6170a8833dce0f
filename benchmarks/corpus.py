"""Benchmark corpora: a mixed export, spine MRI reports only, and MTSamples repeated.

Everything here is generated from templates with a seeded random generator
(the same arguments give the same notes), except :func:`mtsamples_export`,
which repeats the public MTSamples reports of ``../shared/external`` when
they are there.

Proportions of the generated mixed export (``mixed_export``):

* ``spine_fraction`` (default 5 %) of the notes are spine imaging reports
  (MRI, CT, radiographs) with and without fractures;
* the others are everyday notes of a hospital export: ward progress notes,
  nursing notes, clinic letters, discharge summaries, ED notes, chest
  radiographs, CT head, abdominal ultrasound, echo and lab reports. They use
  the phrasing such notes use, including words the rules look for where
  real notes have them (``No pedal oedema``, ``afebrile``, ``heparin 5000
  units SC``, ``INR 1.1``, ``pain 3/10``, ``hip fracture``):
  ``clinical_rate`` sets how often a note carries one of them (default 0.25).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
MTSAMPLES = ROOT.parent / "shared" / "external" / "mtsamples" / "mtsamples_terms_dev.csv"

LEVELS = ["T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"]
DISCS = ["T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
NAMES = ["Smith", "Jones", "Patel", "Nguyen", "Garcia", "Brown", "Wilson", "Taylor", "Khan", "Murphy"]


def _pick(rng: random.Random, *options):
    return rng.choice(options)


def _date(rng: random.Random) -> str:
    return f"20{rng.randint(22, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


# ---------------------------------------------------------------------------------------------
# Spine imaging reports
# ---------------------------------------------------------------------------------------------

def _disc_paragraph(rng: random.Random, disc: str) -> str:
    finding = _pick(
        rng,
        "No disc herniation, canal or foraminal stenosis.",
        "Mild disc bulge without significant canal stenosis. Foramina patent.",
        "Disc desiccation with a broad-based disc bulge and mild bilateral foraminal narrowing. "
        "No nerve root impingement.",
        "Small central disc protrusion indenting the ventral thecal sac without cord or nerve root "
        "compression.",
        "Moderate facet arthropathy and ligamentum flavum thickening with mild canal narrowing.",
        "Modic type 2 endplate changes. Mild left foraminal narrowing.",
    )
    return f"{disc}: {finding}"


def spine_report(rng: random.Random, *, modality: str | None = None) -> tuple[str, str]:
    """A spine imaging report (title, text): about 1.5-3 kB, half of them with a fracture."""
    modality = modality or _pick(rng, "MRI", "MRI", "MRI", "CT", "XR")
    region = _pick(rng, "LUMBAR SPINE", "THORACIC SPINE", "THORACOLUMBAR SPINE", "WHOLE SPINE")
    title = f"{modality} {region}"
    level = rng.choice(LEVELS)
    fractured = rng.random() < 0.5
    acuity = _pick(rng, "acute", "subacute", "chronic", "age-indeterminate")
    loss = rng.choice([10, 15, 20, 25, 30, 40, 50])
    lines = [f"{title} {'WITHOUT CONTRAST' if modality != 'XR' else '2 VIEWS'}", ""]
    lines.append("CLINICAL HISTORY: " + _pick(
        rng,
        f"{rng.randint(60, 92)} year old with sudden onset back pain after a fall. ?fracture.",
        "Back pain for 3 weeks, osteoporosis. Assess for vertebral compression fracture.",
        f"Known myeloma, new thoracic back pain. {level} height loss on radiograph. Acuity?",
        "Low back pain radiating to the left leg. Assess for disc herniation.",
        "Trauma. Point tenderness at the thoracolumbar junction.",
    ))
    lines.append("")
    if modality == "MRI":
        lines.append("TECHNIQUE: Sagittal T1, T2 and STIR sequences. Axial T2 through the lower discs.")
    elif modality == "CT":
        lines.append("TECHNIQUE: Axial CT with sagittal and coronal reformats. No intravenous contrast.")
    else:
        lines.append("TECHNIQUE: AP and lateral views.")
    lines.append(f"COMPARISON: {_pick(rng, 'None.', 'Radiographs ' + _date(rng) + '.', 'MRI ' + _date(rng) + '.')}")
    lines.append("")
    lines.append("FINDINGS:")
    lines.append(_pick(rng, "Alignment is normal.", "There is a mild thoracic kyphosis.",
                       "Mild dextroconvex scoliosis centred at L2.", "Alignment is maintained."))
    if fractured:
        oedema = ("There is diffuse marrow oedema of the vertebral body on STIR."
                  if acuity in ("acute", "subacute") and modality == "MRI" else
                  "No marrow oedema." if modality == "MRI" else "")
        lines.append(f"There is an {acuity} compression fracture of the {level} vertebral body with approximately "
                     f"{loss}% loss of anterior height. {oedema}")
        lines.append(_pick(rng, "No retropulsion. The posterior wall is intact.",
                           "There is 3 mm retropulsion of the posterosuperior corner narrowing the canal.",
                           "No retropulsed fragment. No epidural collection.",
                           "Mild retropulsion without cord compression."))
        if rng.random() < 0.3:
            lines.append(f"Further chronic wedge deformity of {rng.choice(LEVELS)} without oedema.")
    else:
        lines.append("Vertebral body heights are maintained. No fracture or destructive lesion.")
        lines.append("Marrow signal is within normal limits." if modality == "MRI"
                     else "Bone density is within normal limits for age.")
    if modality != "XR":
        for disc in rng.sample(DISCS, rng.randint(3, 6)):
            lines.append(_disc_paragraph(rng, disc))
        lines.append(_pick(rng, "The conus terminates normally at L1 with normal signal.",
                           "The visualised cord is normal in calibre and signal.",
                           "The conus medullaris is normal."))
        lines.append(_pick(rng, "Paraspinal soft tissues are unremarkable.",
                           "Incidental simple renal cyst on the left.",
                           "Paraspinal muscles show fatty atrophy."))
    if modality == "MRI":
        lines.append(_pick(rng, "The sacroiliac joints are unremarkable on the included images.",
                           "Normal appearance of the visualised sacrum and iliac bones.",
                           "No paravertebral collection. No abnormal enhancement."))
        lines.append("The neural foramina are otherwise patent and the exiting nerve roots are unremarkable. "
                     "Facet joints show age-appropriate degenerative change.")
    lines.append("")
    lines.append("IMPRESSION:")
    if fractured:
        lines.append(f"1. {acuity.capitalize()} {level} compression fracture with {loss}% height loss.")
        lines.append(_pick(rng, "2. No retropulsion or epidural extension.",
                           "2. Suitable for vertebroplasty assessment.",
                           "2. Degenerative disc disease, most marked at L4-L5."))
    else:
        lines.append(_pick(rng, "1. No acute fracture.", "1. Degenerative changes without acute fracture.",
                           "1. No vertebral compression fracture. Multilevel spondylosis."))
    lines.append("")
    lines.append(f"Reported by Dr {rng.choice(NAMES)}, consultant radiologist.")
    return title, "\n".join(lines) + "\n"


def _demo_spine_reports() -> list[tuple[str, str]]:
    """Spine imaging reports of the repository's demo and dev corpora."""
    found = []
    demo = ROOT / "corpora" / "demo" / "notes.csv"
    if demo.exists():
        frame = pd.read_csv(demo, dtype=str).fillna("")
        found += [(t, x) for t, x in zip(frame.note_title, frame.note_text) if "SPINE" in t.upper()]
    dev = ROOT / "corpora" / "dev" / "notes.jsonl"
    if dev.exists():
        for line in dev.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            title = row.get("note_title") or ""
            if "SPINE" in title.upper() and row.get("note_text"):
                found.append((title, row["note_text"]))
    return found


def _vary(rng: random.Random, text: str) -> str:
    """A real report with its levels and numbers changed."""
    for level in ("L1", "L2", "L3", "T12", "T11"):
        if level in text and rng.random() < 0.5:
            text = text.replace(level, rng.choice(LEVELS))
    return text


# ---------------------------------------------------------------------------------------------
# Everyday notes
# ---------------------------------------------------------------------------------------------

def _vitals(rng: random.Random) -> str:
    return (f"T {rng.uniform(36.1, 37.6):.1f} HR {rng.randint(58, 104)} BP {rng.randint(100, 160)}/"
            f"{rng.randint(55, 95)} RR {rng.randint(12, 22)} SpO2 {rng.randint(92, 100)}% RA")


def _clinical(rng: random.Random, rate: float) -> str:
    """With probability ``rate``, one phrase real notes use that the rules look for."""
    if rng.random() >= rate:
        return ""
    return " " + _pick(
        rng,
        "No pedal oedema.", "Mild bilateral ankle edema.", "VTE prophylaxis: heparin 5000 units SC BD.",
        "Enoxaparin 40 mg SC daily.", "On warfarin for AF, INR 2.3 today.", "Coags: INR 1.1, PT 12.8.",
        "Plt 231.", "Low grade fever overnight, cultures sent.", "Treated for a urinary tract infection.",
        "Started on IV antibiotics for pneumonia.", "Pain 3/10 with paracetamol.",
        "History of right hip fracture in 2019.", "Known metastatic breast cancer.",
        "Wound clean, no signs of infection.", "Apixaban 5 mg BD.", "Sepsis screen negative.",
    )


def general_note(rng: random.Random, clinical_rate: float = 0.25) -> tuple[str, str]:
    """An everyday (non-spine) note: (title, text)."""
    kind = rng.choice(["progress", "progress", "nursing", "nursing", "letter", "discharge", "ed",
                       "cxr", "ct_head", "us_abdo", "echo", "labs"])
    name = rng.choice(NAMES)
    age = rng.randint(19, 95)
    extra = _clinical(rng, clinical_rate)
    if kind == "progress":
        title = "Progress note"
        text = (f"WARD ROUND - Day {rng.randint(1, 12)}\n"
                f"S: Feels {_pick(rng, 'better', 'tired', 'much the same', 'nauseated')}. Slept "
                f"{_pick(rng, 'well', 'poorly')}. Eating and drinking. Bowels opened.\n"
                f"O: {_vitals(rng)}. Alert and oriented. Heart sounds dual, no murmur. Chest "
                f"{_pick(rng, 'clear', 'coarse crackles right base', 'reduced air entry left base')}. "
                f"Abdomen soft, non-tender. Calves soft.{extra}\n"
                f"Bloods: Hb {rng.randint(85, 150)}, WCC {rng.uniform(4, 14):.1f}, CRP {rng.randint(1, 120)}, "
                f"Na {rng.randint(130, 145)}, K {rng.uniform(3.3, 5.2):.1f}, Cr {rng.randint(50, 180)}.\n"
                f"A: {age}M/F with {_pick(rng, 'community acquired chest symptoms, improving', 'decompensated heart failure', 'COPD exacerbation', 'acute kidney injury on CKD', 'delirium, improving')}.\n"
                f"P: Continue current management. {_pick(rng, 'Physio review.', 'Repeat bloods tomorrow.', 'OT assessment for discharge.', 'Review by the renal team.')} "
                f"Discuss with family.\n")
    elif kind == "nursing":
        title = "Nursing note"
        text = (f"Nursing shift summary ({_pick(rng, 'day', 'night')}).\n"
                f"Obs stable: {_vitals(rng)}. Mobilising with frame and assistance of one. "
                f"Diet and fluids tolerated. Pressure areas intact, repositioned 2 hourly. "
                f"Voiding independently. Patient settled and comfortable.{extra} "
                f"Family visited. Plan as per medical team.\n")
    elif kind == "letter":
        title = "Clinic letter"
        text = (f"Dear Dr {rng.choice(NAMES)},\n\nRe: {name}, age {age}\n\n"
                f"I saw this patient today in the {_pick(rng, 'cardiology', 'diabetes', 'respiratory', 'general medical', 'gastroenterology')} clinic. "
                f"{_pick(rng, 'Symptoms have improved since the last visit.', 'There has been no change.', 'They report more breathlessness on exertion.')} "
                f"Current medications: {_pick(rng, 'metformin 1 g BD, ramipril 5 mg', 'bisoprolol 2.5 mg, atorvastatin 40 mg', 'salbutamol inhaler, tiotropium', 'omeprazole 20 mg, levothyroxine 100 mcg')}.{extra}\n"
                f"On examination {_vitals(rng)}. Examination otherwise unremarkable.\n"
                f"Plan: {_pick(rng, 'continue current treatment and review in 6 months', 'increase the dose and repeat bloods in 4 weeks', 'refer for echocardiography', 'arrange spirometry')}.\n\n"
                f"Yours sincerely,\nDr {rng.choice(NAMES)}\n")
    elif kind == "discharge":
        title = "Discharge summary"
        text = (f"DISCHARGE SUMMARY\nAdmitted: {_date(rng)}  Discharged: {_date(rng)}\n"
                f"Diagnosis: {_pick(rng, 'Lower respiratory symptoms', 'Heart failure exacerbation', 'Left leg swelling', 'Acute kidney injury', 'Syncope', 'Upper GI bleed')}\n"
                f"Presenting complaint: {_pick(rng, 'shortness of breath', 'fall at home', 'chest pain', 'confusion', 'leg swelling')}.\n"
                f"Hospital course: treated according to local guidelines with good response. "
                f"{_pick(rng, 'Echo showed moderate LV impairment.', 'CT head was normal.', 'Chest X-ray showed right lower lobe consolidation.', 'Endoscopy showed a duodenal ulcer.')}"
                f"{extra}\nMedications on discharge: {_pick(rng, 'amlodipine 5 mg, atorvastatin 20 mg', 'furosemide 40 mg, bisoprolol 5 mg', 'amoxicillin 500 mg TDS for 5 days', 'lansoprazole 30 mg')}.\n"
                f"Follow up: GP in 1 week; clinic in 6 weeks.\n")
    elif kind == "ed":
        title = "ED note"
        text = (f"EMERGENCY DEPARTMENT\nPC: {_pick(rng, 'chest pain', 'abdominal pain', 'headache', 'fall', 'shortness of breath', 'laceration to hand')}.\n"
                f"HPI: {age} year old, onset {rng.randint(1, 48)} hours ago. No vomiting. No head injury.{extra}\n"
                f"Exam: {_vitals(rng)}. {_pick(rng, 'Chest clear.', 'Abdomen soft, mild RIF tenderness.', 'GCS 15, no focal neurology.', 'Wound 3 cm, clean.')}\n"
                f"ECG: sinus rhythm. Bloods sent.\nPlan: {_pick(rng, 'analgesia and review', 'admit under medicine', 'discharge with GP follow up', 'suture and tetanus booster')}.\n")
    elif kind == "cxr":
        title = "XR CHEST"
        text = (f"CHEST RADIOGRAPH PA\nIndication: {_pick(rng, 'cough', 'shortness of breath', 'pre-operative', 'chest pain')}.{extra}\n"
                f"Findings: The heart size is {_pick(rng, 'normal', 'mildly enlarged')}. "
                f"{_pick(rng, 'The lungs are clear.', 'Patchy consolidation at the right base.', 'Small left pleural effusion.', 'Hyperexpanded lungs.')} "
                f"No pneumothorax. Mediastinal contours are normal.\nImpression: "
                f"{_pick(rng, 'No acute cardiopulmonary abnormality.', 'Right basal consolidation.', 'Small left effusion.')}\n")
    elif kind == "ct_head":
        title = "CT HEAD"
        text = f"CT HEAD WITHOUT CONTRAST\nIndication: {_pick(rng, 'fall', 'confusion', 'headache')}.{extra}\n"
        text += (f"Findings: {_pick(rng, 'No intracranial haemorrhage.', 'Small chronic subdural collection on the right.', 'Age-related involutional change.')} "
                 "Grey-white matter differentiation is preserved. Ventricles normal. No midline shift.\n"
                 "Impression: No acute intracranial abnormality.\n")
    elif kind == "us_abdo":
        title = "US ABDOMEN"
        text = (f"ULTRASOUND ABDOMEN\nIndication: {_pick(rng, 'deranged LFTs', 'RUQ pain', 'AKI')}.\n"
                f"Liver is {_pick(rng, 'normal in size and echotexture', 'bright, in keeping with fatty infiltration')}. "
                f"Gallbladder {_pick(rng, 'contains multiple calculi', 'is normal')}. CBD {rng.randint(3, 8)} mm. "
                f"Kidneys normal in size without hydronephrosis. Spleen normal.\n")
    elif kind == "echo":
        title = "Echocardiogram"
        text = (f"TRANSTHORACIC ECHO\nLV size normal, EF {rng.randint(25, 65)}%. "
                f"{_pick(rng, 'No regional wall motion abnormality.', 'Inferior hypokinesia.')} "
                f"Valves: {_pick(rng, 'mild mitral regurgitation', 'aortic sclerosis without stenosis', 'normal')}. "
                f"RV normal. No pericardial effusion.\n")
    else:
        title = "Lab results"
        text = (f"FULL BLOOD COUNT\nHb {rng.randint(85, 160)} g/L\nWCC {rng.uniform(3.5, 15):.1f}\n"
                f"Neutrophils {rng.uniform(2, 12):.1f}\n"
                f"{'Platelets ' + str(rng.randint(90, 420)) if rng.random() < 0.5 else 'MCV ' + str(rng.randint(78, 101))}\n"
                f"UREA AND ELECTROLYTES\nNa {rng.randint(128, 146)}\nK {rng.uniform(3.2, 5.6):.1f}\n"
                f"Creatinine {rng.randint(45, 240)}\neGFR {rng.randint(20, 90)}\n")
    if kind in ("progress", "letter", "discharge", "ed") and rng.random() < 0.8:
        text += _background(rng)
    return title, text


def _background(rng: random.Random) -> str:
    """Term-free padding real notes carry: background, social history, medications, plan."""
    history = ", ".join(rng.sample(["hypertension", "type 2 diabetes", "COPD", "asthma", "hypothyroidism",
                                    "gout", "depression", "GORD", "glaucoma", "CKD stage 3",
                                    "benign prostatic hypertrophy", "atrial septal defect repair"], 3))
    meds = ", ".join(rng.sample(["amlodipine 5 mg OD", "metformin 500 mg BD", "ramipril 2.5 mg OD",
                                 "atorvastatin 40 mg ON", "omeprazole 20 mg OD", "levothyroxine 75 mcg OD",
                                 "sertraline 50 mg OD", "tamsulosin 400 mcg OD", "salbutamol PRN",
                                 "allopurinol 100 mg OD", "latanoprost drops ON", "paracetamol 1 g QDS PRN"], 4))
    return (f"\nBackground: {history}.\nSocial: lives {_pick(rng, 'alone', 'with partner', 'with daughter')} in a "
            f"{_pick(rng, 'house', 'bungalow', 'flat on the second floor')}, {_pick(rng, 'independent', 'carers twice daily')}, "
            f"{_pick(rng, 'never smoked', 'ex-smoker', 'smokes 10 per day')}, alcohol {rng.randint(0, 20)} units/week.\n"
            f"Medications: {meds}.\nAllergies: {_pick(rng, 'NKDA', 'penicillin (rash)', 'codeine (nausea)')}.\n"
            f"Plan discussed with the patient, who is in agreement. Safety-net advice given.\n")


# ---------------------------------------------------------------------------------------------
# Exports
# ---------------------------------------------------------------------------------------------

def _frame(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["note_id", "person_id", "note_date", "note_title", "note_text"])
    # no trailing white space (the figures in README.md were measured so)
    frame["note_text"] = frame["note_text"].str.rstrip()
    return frame


def mixed_export(n: int, *, spine_fraction: float = 0.05, clinical_rate: float = 0.25, seed: int = 7,
                 notes_per_person: int = 8) -> pd.DataFrame:
    """A generated hospital export: ``spine_fraction`` spine reports among everyday notes."""
    rng = random.Random(seed)
    demo = _demo_spine_reports()
    rows = []
    for i in range(n):
        if rng.random() < spine_fraction:
            if demo and rng.random() < 0.3:
                title, text = rng.choice(demo)
                text = _vary(rng, text)
            else:
                title, text = spine_report(rng)
        else:
            title, text = general_note(rng, clinical_rate)
        rows.append((f"N{i:07d}", f"P{i // notes_per_person:06d}", _date(rng), title, text))
    return _frame(rows)


def spine_export(n: int, *, seed: int = 11, notes_per_person: int = 3) -> pd.DataFrame:
    """Spine MRI reports only (every note relevant)."""
    rng = random.Random(seed)
    demo = [(t, x) for t, x in _demo_spine_reports() if t.upper().startswith("MRI")]
    rows = []
    for i in range(n):
        if demo and rng.random() < 0.2:
            title, text = rng.choice(demo)
            text = _vary(rng, text)
        else:
            title, text = spine_report(rng, modality="MRI")
        rows.append((f"S{i:07d}", f"Q{i // notes_per_person:06d}", _date(rng), title, text))
    return _frame(rows)


def mtsamples_export(n: int, *, path: Path = MTSAMPLES, notes_per_person: int = 4) -> pd.DataFrame | None:
    """The MTSamples reports repeated to ``n`` notes (None when the file is not there)."""
    if not path.exists():
        return None
    source = pd.read_csv(path, dtype=str).fillna("")
    texts = [(title, text) for title, text in zip(source.sample_name, source.transcription) if text.strip()]
    rows = []
    for i in range(n):
        title, text = texts[i % len(texts)]
        rows.append((f"M{i:07d}", f"R{i // notes_per_person:06d}", f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
                     title, text))
    return _frame(rows)
