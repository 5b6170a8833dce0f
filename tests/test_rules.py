"""Rule behaviour, one trap phrase per row (SPEC §3), and the rule files' own examples."""

import datetime
import json
import subprocess
import sys

import pandas as pd
import pytest

from pipeline.nlp.rule_examples import check_case, example_cases
from pipeline.nlp.rules import (RuleError, check_rules, load_rules, patterns_dir, read_manifest,
                                unlisted_files)

from .conftest import REPO, find

AFFIRMED = dict(negated=False, uncertain=False, hypothetical=False, family=False)


def one(extractor, text, concept, title="", needle=None, date=None):
    found = find(extractor.mentions(text, title, date), concept, needle)
    assert found, f"no {concept} mention in {text!r}"
    return found[0]


def has(extractor, text, concept, title=""):
    """Whether the text holds a mention of the concept."""
    return bool(find(extractor.mentions(text, title), concept))


def assert_attrs(mention, attrs, text):
    """Each of ``attrs`` (name -> expected value) is the mention's."""
    for name, expected in attrs.items():
        assert mention[name] == expected, f"{name} of {mention['concept']} in {text!r}: {mention[name]!r}"


@pytest.mark.parametrize("text, concept, attrs", [
    # fractures and their acuity
    ("Acute compression fracture of L1.", "FRACTURE", dict(acuity="acute", levels=["L1"], **AFFIRMED)),
    ("No acute fracture.", "FRACTURE", dict(negated=True)),
    ("There is no new compression deformity.", "FRACTURE", dict(negated=True)),
    ("INDICATION: Back pain. Rule out fracture.", "FRACTURE", dict(uncertain=True)),
    ("INDICATION: Fall, ?fracture of the lumbar spine.", "FRACTURE", dict(uncertain=True)),
    ("Age-indeterminate compression deformity of T8.", "FRACTURE", dict(acuity="indeterminate", levels=["T8"])),
    ("Chronic-appearing wedge deformity of T10.", "FRACTURE", dict(acuity="chronic", levels=["T10"])),
    ("Mild T9 compression deformity, unchanged from prior.", "FRACTURE", dict(acuity="chronic", levels=["T9"])),
    ("Healed L2 compression fracture.", "FRACTURE", dict(acuity="healed", levels=["L2"])),
    ("Old healed T12 wedge fracture, unchanged from prior.", "FRACTURE", dict(acuity="healed", levels=["T12"])),
    ("L4 compression deformity of unclear age.", "FRACTURE", dict(acuity="indeterminate", levels=["L4"])),
    ("T12 and L2 osteoporotic compression fractures, age unclear.", "FRACTURE", dict(acuity="indeterminate")),
    # the next sentence saying only that its age cannot be told (writers mark it so)
    ("T7 wedge deformity. Acuity cannot be determined without MRI.", "FRACTURE", dict(acuity="indeterminate")),
    # the age words close a list of levels
    ("Multilevel compression deformities (T12, L2, L4), age indeterminate.", "FRACTURE",
     dict(acuity="indeterminate", levels=["T12", "L2", "L4"])),
    ("Wedge deformity of a midthoracic vertebra, possibly T7, age-indeterminate.", "FRACTURE",
     dict(acuity="indeterminate", levels=["T7"])),
    ("Subacute T12 compression fracture.", "FRACTURE", dict(acuity="subacute", levels=["T12"])),
    ("New L3 compression fracture since the prior study.", "FRACTURE", dict(new=True, levels=["L3"])),
    ("History of T9 compression fracture.", "FRACTURE", dict(historical=True, levels=["T9"])),
    ("Mother had osteoporotic fractures.", "FRACTURE", dict(family=True)),
    ("Pathological fracture of L3 due to myeloma.", "FRACTURE", dict(aetiology="malignant", levels=["L3"])),
    ("L2 burst fracture.", "FRACTURE", dict(aetiology="traumatic", levels=["L2"])),
    ("Vertebra plana at T7.", "FRACTURE", dict(levels=["T7"])),
    ("40% loss of height of the L1 vertebral body.", "FRACTURE", dict(levels=["L1"])),
    ("Compression fractures of T11 through L1.", "FRACTURE", dict(levels=["T11", "T12", "L1"])),
    ("Compression deformity at the thoracolumbar junction.", "FRACTURE", dict(levels=["T12", "L1"])),
    ("Fracture of the first lumbar vertebra.", "FRACTURE", dict(levels=["L1"])),
    # UK and Australian shorthand: '#' for fracture, VF, MSCC, dorsal levels
    ("Conclusion: New L1 wedge #. Old T8 wedge #.", "FRACTURE", dict(levels=["L1"], **AFFIRMED)),
    ("Old # T8.", "FRACTURE", dict(acuity="chronic", levels=["T8"])),
    ("Imp: L1 VF of uncertain age; old T12 VF.", "FRACTURE", dict(acuity="indeterminate", levels=["L1"])),
    ("Acute osteoporotic VF L1 - severe pain limiting mobility.", "FRACTURE",
     dict(acuity="acute", aetiology="osteoporotic", levels=["L1"])),
    ("Mild anterior wedge compression of D12 of indeterminate age.", "FRACTURE",
     dict(acuity="indeterminate", levels=["T12"])),
    ("Clinical details: Fall. ?T11 #", "FRACTURE", dict(uncertain=True, levels=["T11"])),
    ("MRI: MSCC at L1 secondary to acute pathological #.", "EPIDURAL_DISEASE", dict(levels=["L1"], **AFFIRMED)),
    ("Extradural tumour at L1 causing compression of the conus.", "EPIDURAL_DISEASE", dict(levels=["L1"], **AFFIRMED)),
    # held-out corpus, US and EHR-export phrasing
    ("Back pain after coughing, chronic steroids. High suspicion for osteoporotic VCF at T12.", "FRACTURE",
     dict(uncertain=True, acuity="", levels=["T12"])),
    ("78F on chronic steroids with an L1 compression fracture.", "FRACTURE", dict(acuity="", levels=["L1"])),
    ("Severe acute L1 compression fracture with 70% anterior height loss, new since 2025.", "FRACTURE",
     dict(historical=False, acuity="acute", levels=["L1"])),
    ("Fever/active infection: denies; T 36.7.", "INFECTION", dict(negated=True)),
    ("Consent: risks incl. bleeding, infection, headache.", "INFECTION", dict(hypothetical=True)),
    ("Consent signed; risks (bleeding, infection, cement extravasation) reviewed again.", "INFECTION",
     dict(hypothetical=True)),
    ("Return precautions: fever, new weakness, bowel/bladder symptoms.", "INFECTION", dict(hypothetical=True)),
    ("Risks: infection, bleeding, cement leak.", "INFECTION", dict(hypothetical=True)),
    ("Complications: wound infection requiring antibiotics.", "INFECTION", dict(AFFIRMED)),
    ("Bleeding risk: INR 1.8 today.", "COAGULOPATHY", dict(AFFIRMED, value=1.8)),
    ("Discharge Diagnosis:\nCoagulopathy due to warfarin, reversed\nAtrial fibrillation", "COAGULOPATHY",
     dict(corrected="reversed")),
    ("Low-grade fever (38.1 C) on POD1 attributed to atelectasis, resolved with incentive spirometry.",
     "INFECTION", dict(corrected="resolved")),
    # second held-out corpus: terse and messy notes, Indian units, contaminants
    ("Labs 15/06: Hb 12.1, Platelets 1.89 lakh/cumm, INR 1.12.", "COAGULOPATHY", dict(lab="platelets", value=189.0)),
    ("WBC 5,800 /uL, Hb 11.2 g/dL, PLT 16.4 x10^4/uL, PT-INR 1.32", "COAGULOPATHY", dict(lab="platelets", value=164.0)),
    ("Urine dip: leuc +++ nit +. ? UTI - MSU sent.", "INFECTION", dict(uncertain=True)),
    ("hx osteoporsis dx 2019 never took the fosamax meds reviewed pt takes plavix 75 daily", "ANTICOAGULANT",
     dict(AFFIRMED, med_status="continued")),
    ("BCx x2 were drawn: 1 of 2 sets grew coagulase-negative Staph (S. epidermidis) in the aerobic bottle.",
     "INFECTION", dict(uncertain=True)),
    ("BCx 2/2 MRSA, on vancomycin.", "INFECTION", dict(AFFIRMED)),
    ("h/o MSSA bacteremia complicated by T7-8 discitis-osteomyelitis in 03/2024.", "INFECTION",
     dict(historical=True, levels=["T7", "T8"])),
    ("No pathologic fracture, no endplate depression and no loss of vertebral body height.", "FRACTURE",
     dict(negated=True)),
    ("2. New T12 compression deformity since 06/2021.", "FRACTURE", dict(AFFIRMED, historical=False, new=True)),
    ("Dx: lung adenocarcinoma, on osimertinib since 03/2023.", "MALIGNANCY", dict(historical=False)),
    # a relative clause is about the noun before it
    ("This was complicated by an E. coli UTI which was treated with IV gentamicin.", "INFECTION",
     dict(corrected="treated")),
    ("He worried he had a crushed vertebra like his mother, who had osteoporotic compression fractures.",
     "FRACTURE", dict(family=True)),
    ("Reviewed x-ray: L3 compression fracture, radiologist unable to say whether it is new.", "FRACTURE",
     dict(AFFIRMED, new=False, acuity="", levels=["L3"])),
    # bone-health clinics
    ("Counselled that several vertebral fractures can occur within months of stopping denosumab.", "FRACTURE",
     dict(hypothetical=True)),
    ("PMH: osteoporosis, AF.\nDH: apixaban 5 mg bd - continue for now.", "ANTICOAGULANT",
     dict(AFFIRMED, historical=False, section="medications")),
    # oedema
    ("Marrow oedema in the L1 vertebral body.", "OEDEMA", dict(levels=["L1"], **AFFIRMED)),
    ("Bone marrow edema at T12.", "OEDEMA", dict(levels=["T12"], **AFFIRMED)),
    ("STIR hyperintensity in the T11 vertebral body.", "OEDEMA", dict(levels=["T11"], **AFFIRMED)),
    ("Interval development of oedema at T11.", "OEDEMA", dict(new=True, levels=["T11"], **AFFIRMED)),
    ("No marrow oedema.", "OEDEMA", dict(negated=True)),
    # retropulsion and epidural disease
    ("L1 fracture with 3 mm retropulsion.", "RETROPULSION", dict(levels=["L1"], **AFFIRMED)),
    ("No retropulsion.", "RETROPULSION", dict(negated=True)),
    ("Retropulsed fragment narrows the canal at L2.", "RETROPULSION", dict(levels=["L2"], **AFFIRMED)),
    ("Epidural tumour extension at T10.", "EPIDURAL_DISEASE", dict(levels=["T10"], **AFFIRMED)),
    ("Without epidural extension.", "EPIDURAL_DISEASE", dict(negated=True)),
    ("Malignant spinal cord compression at T6.", "EPIDURAL_DISEASE", dict(levels=["T6"], **AFFIRMED)),
    # infection
    ("History of osteomyelitis, treated 2019.", "INFECTION", dict(historical=True, scope="local")),
    # consent lists and uncertain causes
    ("Risks of surgery including but not limited to bleeding, infection, stroke and paralysis were discussed.",
     "INFECTION", dict(hypothetical=True)),
    ("The risks of the surgery were explained to include, but not limited to, bleeding and infection.",
     "INFECTION", dict(hypothetical=True)),
    ("It is possible that she has had chronic pyelonephritis.", "INFECTION", dict(uncertain=True)),
    ("Raised BNP, possibly secondary to underlying infection.", "INFECTION", dict(uncertain=True)),
    ("Fever secondary to pneumonia.", "INFECTION", dict(AFFIRMED)),
    # "possible" governs the item after it, not a whole list of diagnoses
    ("Ischemic cecum with possible metastatic disease, bilateral hydronephrosis on atrial fibrillation, "
     "aspiration pneumonia, chronic alcohol abuse.", "INFECTION", dict(AFFIRMED)),
    ("Possible small focus of marrow oedema at L1.", "OEDEMA", dict(uncertain=True)),
    ("Constitutional: No(t) Fatigue, No(t) Fever. Skin: Not assessed.", "INFECTION", dict(negated=True)),
    # a radiologist's hedges (Open-i chest X-rays)
    ("INDICATION: Question pneumonia, shortness of breath.", "INFECTION", dict(uncertain=True)),
    ("A pneumonia superimposed on emphysema would be a consideration.", "INFECTION", dict(uncertain=True)),
    ("Atypical infection is another consideration.", "INFECTION", dict(uncertain=True)),
    ("Findings may indicate edema or atypical infection.", "INFECTION", dict(uncertain=True)),
    ("Right upper lobe consolidation. Please correlate clinically for pneumonia.", "INFECTION",
     dict(uncertain=True)),
    ("Differential considerations include discitis and metastasis.", "INFECTION", dict(uncertain=True)),
    ("Questions answered. Pneumonia treated with ceftriaxone.", "INFECTION", dict(AFFIRMED)),
    ("The fracture in question is at L1.", "FRACTURE", dict(AFFIRMED, levels=["L1"])),
    # an indication states an infection the patient has, or asks about one in words ConText reads
    ("INDICATIONS: Lumbar osteomyelitis, on IV antibiotics.\nFINDINGS: Stable.", "INFECTION", dict(AFFIRMED)),
    ("INDICATION: ?discitis.\nFINDINGS: Normal.", "INFECTION", dict(uncertain=True)),
    ("INDICATION: Rule out osteomyelitis.\nFINDINGS: Normal.", "INFECTION", dict(uncertain=True)),
    ("INDICATION: Rule out fracture.\nFINDINGS: Normal.", "FRACTURE", dict(uncertain=True)),
    ("Further workup showed osteomyelitis of L2.", "INFECTION", dict(AFFIRMED, levels=["L2"])),
    ("Workup for infection.", "INFECTION", dict(hypothetical=True)),
    ("Healed L4-5 discitis-osteomyelitis.", "INFECTION", dict(corrected="resolved", acuity="", scope="local")),
    ("Risk of infection was discussed.", "INFECTION", dict(hypothetical=True)),
    ("Admitted with urosepsis.", "INFECTION", dict(scope="systemic", **AFFIRMED)),
    ("L2-3 discitis.", "INFECTION", dict(scope="local", **AFFIRMED)),
    ("No fever.", "INFECTION", dict(negated=True)),
    ("Afebrile, observations stable.", "INFECTION", dict(negated=True, scope="systemic")),
    ("Epidural abscess at L2-3.", "INFECTION", dict(scope="local", levels=["L2", "L3"], **AFFIRMED)),
    ("Epidural abscess at L2-3.", "EPIDURAL_DISEASE", dict(levels=["L2", "L3"], **AFFIRMED)),
    ("BCx 2/2 positive for E. coli.", "INFECTION", dict(scope="systemic", **AFFIRMED)),
    # coagulopathy and labs
    ("Known thrombocytopenia.", "COAGULOPATHY", dict(**AFFIRMED)),
    ("INR 1.9", "COAGULOPATHY", dict(lab="INR", value=1.9)),
    ("INR: 2.4 (H)", "COAGULOPATHY", dict(lab="INR", value=2.4)),
    ("Plt 42", "COAGULOPATHY", dict(lab="platelets", value=42.0, unit="10^9/L")),
    ("platelets 38 x10^9/L", "COAGULOPATHY", dict(lab="platelets", value=38.0)),
    ("PLT 120 K/uL", "COAGULOPATHY", dict(lab="platelets", value=120.0)),
    ("platelet count of 45,000", "COAGULOPATHY", dict(lab="platelets", value=45.0)),
    # MIMIC's lab lines: the values of "PT / PTT / INR" in that order, "INR(PT)", "Plt Ct"
    ("PT / PTT / INR:19.1/31.6/1.7, ALT / AST:37/165", "COAGULOPATHY", dict(lab="INR", value=1.7)),
    ("BLOOD INR(PT)-1.2 PTT-29.3", "COAGULOPATHY", dict(lab="INR", value=1.2)),
    ("BLOOD WBC-9.7 Hct-24.0 Plt Ct-593", "COAGULOPATHY", dict(lab="platelets", value=593.0)),
    ("Coagulopathy reversed with vitamin K.", "COAGULOPATHY", dict(corrected="reversed")),
    # a value aimed at is not a measured one (screening reads measured values only)
    ("Goal INR 2-3.", "COAGULOPATHY", dict(hypothetical=True, value=2.0)),
    ("Continue Coumadin to an INR of 2 with a duplex follow-up.", "COAGULOPATHY", dict(hypothetical=True)),
    ("Target INR of 2.5 on warfarin.", "COAGULOPATHY", dict(hypothetical=True)),
    ("INR 2.8 today, goal 2-3.", "COAGULOPATHY", dict(AFFIRMED, value=2.8)),
    # anticoagulants
    ("Warfarin held for 5 days.", "ANTICOAGULANT", dict(med_status="held")),
    ("Continue apixaban.", "ANTICOAGULANT", dict(med_status="continued")),
    # a hold word is the anticoagulant's status and the coagulopathy's correction, in one sentence
    ("Coumadin held 1/13-1/14 for INR 3.6, resumed 1/15.", "ANTICOAGULANT", dict(med_status="held", corrected="")),
    ("Coumadin held 1/13-1/14 for INR 3.6, resumed 1/15.", "COAGULOPATHY", dict(corrected="held")),
    ("Enoxaparin ceased on discharge.", "ANTICOAGULANT", dict(med_status="held", corrected="")),
    ("Remains on warfarin, aspirin stopped.", "ANTICOAGULANT", dict(med_status="continued")),
    ("Would avoid other blood thinners including Plavix.", "ANTICOAGULANT", dict(med_status="held")),
    ("Continue warfarin but avoid NSAIDs.", "ANTICOAGULANT", dict(med_status="continued")),
    # supporting
    ("Multiple myeloma.", "MALIGNANCY", dict(**AFFIRMED)),
    ("Severe back pain, 9/10.", "PAIN", dict(**AFFIRMED)),
    ("Prior kyphoplasty at L2.", "PRIOR_AUGMENTATION", dict(levels=["L2"])),
])
def test_trap_phrases(extractor, text, concept, attrs):
    assert_attrs(one(extractor, text, concept, title="MRI THORACOLUMBAR SPINE"), attrs, text)


def test_an_indication_asks_a_question_only_in_an_imaging_report(extractor):
    """An imaging report's indication asks ("HISTORY: back pain, fracture"); a clinical note's
    HISTORY: or INDICATIONS: states what the patient has (MTSamples' kyphoplasty notes)."""
    from pipeline.nlp.pipeline import is_imaging_report
    text = "INDICATIONS: L1 compression fracture, for kyphoplasty.\n\nPROCEDURE: Kyphoplasty at L1."
    assert one(extractor, text, "FRACTURE", title="MRI LUMBAR SPINE")["uncertain"]
    assert not one(extractor, text, "FRACTURE", title="IR Consult")["uncertain"]
    assert [is_imaging_report("", title) for title in ("XR CHEST PA AND LATERAL", "DEXA BONE DENSITOMETRY",
                                                        "Kyphoplasty - Consult", "Discharge Summary")] == \
        [True, True, False, False]
    # without a title, the first line says
    assert is_imaging_report("MRI LUMBAR SPINE WITHOUT CONTRAST\nHISTORY: pain.", "")
    assert not is_imaging_report("DISCHARGE SUMMARY\nMRI showed an L1 fracture.", "")


@pytest.mark.parametrize("text, concept", [
    ("Epidural steroid injection at L4-5.", "EPIDURAL_DISEASE"),
    ("Labour epidural anaesthesia was uneventful.", "EPIDURAL_DISEASE"),
    ("Gait: shuffling, retropulsion on pull test.", "RETROPULSION"),
    ("Right hip fracture.", "FRACTURE"),
    ("Old healed left rib fractures.", "FRACTURE"),
    ("Schmorl's node at L2.", "FRACTURE"),
    # discs and osteophytes deform the cord and the thecal sac; a vertebral level nearby is the disc's
    ("There is also a fairly large disc at C3-C4 with cord deformity.", "FRACTURE"),
    ("Osteophyte at C5-C6 causing deformity of the ventral spinal cord.", "FRACTURE"),
    ("T2 hyperintense signal in the knee joint effusion.", "OEDEMA"),
    ("Bilateral pedal oedema.", "OEDEMA"),
    ("Patient is afebrile.", "INFECTION"),
    ("Modic type 1 endplate changes - T2/STIR hyperintensity along the L4 endplate.", "OEDEMA"),
    ("Parkinsonian: rigidity, retropulsion on standing (pull test positive).", "RETROPULSION"),
    # the pull test's result is counted in steps; "Station" is the standing part of the exam
    ("Station: 3-4step retropulsion.", "RETROPULSION"),
    ("Gait was short stepped with mild anteroflexed posture. 3-4 step retropulsion noted.", "RETROPULSION"),
    ("Retropulsion of two steps, recovers unaided.", "RETROPULSION"),
    ("A few steps of retropulsion.", "RETROPULSION"),
    ("L1 burst fracture with 40% canal compromise from retropulsed bone.", "EPIDURAL_DISEASE"),
    ("Disc extrusion mildly indenting the thecal sac at L5-S1.", "EPIDURAL_DISEASE"),
    ("Infection screen: sent.", "INFECTION"),
    ("Blood cultures: no growth to date.", "INFECTION"),
    ("Hay fever, on cetirizine.", "INFECTION"),
    # heparin that keeps a line open, or measured as a lab test, is not anticoagulant treatment
    ("The port had been aspirated and irrigated with heparin solution.", "ANTICOAGULANT"),
    ("Low molecular weight heparin test was low at 0.27 units/mL.", "ANTICOAGULANT"),
    ("Marrow oedema in the lateral tibial plateau in keeping with an insufficiency fracture.", "FRACTURE"),
    # "T1" here is the MRI sequence, not a vertebra that would make the fracture vertebral
    ("Marrow oedema within the lateral tibial plateau with a thin subchondral T1 hypointense line, in keeping "
     "with a subchondral insufficiency fracture.", "FRACTURE"),
    # a UK pre-procedure checklist's field, and bowing the report itself calls no retropulsion
    ("Infection: afebrile, no current infection, CRP 9.", "INFECTION"),
    ("Mild posterior bowing of the posterior cortex but no retropulsed fragment.", "RETROPULSION"),
    ("Palliative RT 20 Gy/5# to T10.", "FRACTURE"),
    # posterior elements and processes are not the vertebral body augmentation treats
    ("Acute nondisplaced fractures of the left transverse processes of L2 and L3.", "FRACTURE"),
    ("3. Acute nondisplaced left L2 and L3 transverse process fractures.", "FRACTURE"),
    ("# L2-L3 transverse process fxs: stable injury per spine service.", "FRACTURE"),
    ("Laminar fracture at T12.", "FRACTURE"),
    ("Pt: 71 M. Dx: acute L2 fracture.", "COAGULOPATHY"),
    ("FRACTURE LIAISON SERVICE - letter to GP", "FRACTURE"),
    ("L4-5 facet arthropathy with small joint effusions and mild periarticular edema at the right L4-5 facet.",
     "OEDEMA"),
    ("PMH: none. Left L2/L3 TP fx.", "FRACTURE"),
    # radiotherapy is given in fractions
    ("Plan conventional EBRT 20 Gy in 5 fx to T7-T9 starting 2/11.", "FRACTURE"),
    ("Diffuse osteopenia limits sensitivity for a nondisplaced fracture.", "FRACTURE"),
    # a fracture written against another bone is that bone's, whatever levels its sentence names
    ("Discharge Diagnosis:\nLeft 7th-9th rib fractures\nLeft L2 and L3 transverse process fractures", "FRACTURE"),
    ("Most pronounced at C5-C6 with moderate disc height loss and uncovertebral hypertrophy.", "FRACTURE"),
    ("MRN # 40213. Referred for MRI T12.", "FRACTURE"),
    ("VF arrest in 2019, ICD in situ. T12 tender.", "FRACTURE"),
    ("A linear area of T1 hypointensity becoming hyperintense on T2 images in the left para-atrial region "
     "represents edema.", "OEDEMA"),
])
def test_not_a_mention(extractor, text, concept):
    affirmed = [m for m in find(extractor.mentions(text), concept)
                if not (m["negated"] or m["uncertain"] or m["hypothetical"])]
    assert not affirmed, f"{text!r} gave {affirmed}"


@pytest.mark.parametrize("text, concept, name, value", [
    ("Vertebral fractures at T7/T8 reported on recent radiographs.", "FRACTURE", "acuity", ""),
    ("She was told at her old practice that she has an L2 compression fracture.", "FRACTURE", "acuity", ""),
    ("Lytic-sclerotic metastasis of T10 with pathological compression fracture.", "FRACTURE", "acuity", ""),
    ("L4 compression deformity, new since 2019, age indeterminate.", "FRACTURE", "new", False),
    ("INR 1.9 despite IV vitamin K, not responsive.", "COAGULOPATHY", "corrected", ""),
    ("Heparin 5000 units SC BD (VTE prophylaxis).", "ANTICOAGULANT", "hypothetical", False),
    ("Oxycodone 5 mg PRN, apixaban 5 mg bd.", "ANTICOAGULANT", "hypothetical", False),
])
def test_modifiers_stay_in_their_scope(extractor, text, concept, name, value):
    assert one(extractor, text, concept)[name] == value


def test_negation_phrase_across_a_hard_line_wrap(extractor):
    mention = one(extractor, "Low\nsuspicion for cauda equina syndrome.", "EPIDURAL_DISEASE")
    assert mention["negated"]
    mention = one(extractor, "There is no evidence\nof retropulsion.", "RETROPULSION")
    assert mention["negated"]


@pytest.mark.parametrize("text, concept, levels", [
    ("T2 hyperintensity within the L1 vertebral body.", "OEDEMA", ["L1"]),
    ("Diffuse low T1 and high STIR signal throughout the T11 vertebral body in keeping with an acute fracture.",
     "FRACTURE", ["T11"]),
])
def test_levels_mri_sequences_are_not_levels(extractor, text, concept, levels):
    assert one(extractor, text, concept)["levels"] == levels


@pytest.mark.parametrize("text", [
    "Vertebra plana of T9 - remote, with bridging osteophytes between T8 and T10.",
    "Chronic T9 vertebra plana with fused bony bridging to T8 and T10, unchanged.",
])
def test_levels_a_bridge_reaches_are_not_the_fracture(extractor, text):
    assert one(extractor, text, "FRACTURE")["levels"] == ["T9"]
    wedge = one(extractor, "Wedge deformity of L3 with anterior osteophytes bridging to L2.", "FRACTURE")
    assert wedge["levels"] == ["L3"]
    # a level written against the fracture is its own, osteophytes or not
    assert one(extractor, "Osteophytes and L1 compression fracture.", "FRACTURE")["levels"] == ["L1"]


def test_levels_a_mention_without_its_own_takes_those_of_its_concept(extractor):
    mentions = extractor.mentions("L3-L4 discitis-osteomyelitis with L4 collapse (pathologic fracture).")
    assert [m["levels"] for m in find(mentions, "FRACTURE")] == [["L4"], ["L4"]]
    assert all(m["levels"] == ["L3", "L4"] for m in find(mentions, "INFECTION"))
    # with no mention of its own concept beside it, the clause's levels
    assert one(extractor, "Acute L1 burst fracture with retropulsion.", "RETROPULSION")["levels"] == ["L1"]


def test_levels_a_bracketed_range_of_what_was_imaged_is_not_the_fracture(extractor):
    text = "VFA (lateral spine T4-L4): Moderate (Genant grade 2) wedge deformity of L1."
    assert one(extractor, text, "FRACTURE")["levels"] == ["L1"]
    # a bracketed list of the fractured levels is theirs
    assert one(extractor, "Compression fractures (T12, L1) unchanged.", "FRACTURE")["levels"] == ["T12", "L1"]


@pytest.mark.parametrize("text, concept, levels", [
    ("Known chronic T8/T12 fractures.", "FRACTURE", ["T8", "T12"]),       # a list; "L1/2" is a disc
    ("MRI: acute T6 pathologic fracture with 3 mm retropulsion, and a new acute L2 pathologic compression "
     "fracture.", "RETROPULSION", ["T6"]),                                 # the fracture it follows
    ("There is 25% loss of height of L2 with mild disc bulge at L2-3.", "FRACTURE", ["L2"]),  # the disc's level
    # ... which stays the level of what the disc does there
    ("Disc herniation at L4-5 causing thecal sac compression.", "EPIDURAL_DISEASE", ["L4", "L5"]),
    # a densitometry region is what was measured
    ("DXA: L1-L3 T-score -1.9 (L4 excluded because of the fracture).", "FRACTURE", ["L4"]),
    # a level named as a place is the fracture's own, over a wrapped line too
    ("Permanent SCS leads via L1-2 (again avoiding the T11-T12 level\n   with the old fracture and cement).",
     "FRACTURE", ["T11", "T12"]),
    ("Disc bulge at L4-5; the fracture at the level of L1 is old.", "FRACTURE", ["L1"]),
])
def test_levels_of_lists_followed_fractures_and_discs(extractor, text, concept, levels):
    assert one(extractor, text, concept)["levels"] == levels


def test_a_collapsed_level_is_a_fracture_of_its_own(extractor):
    mentions = find(extractor.mentions("Films demonstrated a new compression fracture at T12 and further "
                                       "collapse of L1."), "FRACTURE")
    assert [m["levels"] for m in mentions] == [["T12"], ["L1"]]


def test_acuity_stays_with_its_own_level(extractor):
    mentions = find(extractor.mentions("Acute L1 compression fracture; chronic T7 wedge deformity."), "FRACTURE")
    by_level = {tuple(m["levels"]): m["acuity"] for m in mentions}
    assert by_level == {("L1",): "acute", ("T7",): "chronic"}


def test_offsets_name_their_text(extractor):
    text = "FINDINGS:\nAcute L1 compression fracture with marrow\noedema. INR 2.6."
    for mention in extractor.mentions(text):
        assert text[mention["start"]:mention["end"]] == mention["lexical_variant"]


CASES = example_cases()


@pytest.mark.parametrize("literal, category, text, must_match", CASES,
                         ids=[f"{c[0]}:{c[2][:30]}" for c in CASES])
def test_rule_examples(extractor, literal, category, text, must_match):
    assert check_case(extractor, category, text, must_match)


def test_every_rule_file_is_listed_and_exists():
    folder = patterns_dir()
    manifest = read_manifest(folder)
    listed = [name for kind in ("target", "context", "sections") for name in manifest[kind]["files"]]
    assert listed and all((folder / name).exists() for name in listed)
    assert unlisted_files(folder) == []


def test_shipped_rules_are_valid():
    assert check_rules() == []


def _folder(tmp_path, kind, rules):
    (tmp_path / kind).mkdir(parents=True, exist_ok=True)
    key = {"target": "target_rules", "context": "context_rules", "sections": "section_rules"}[kind]
    (tmp_path / kind / "extra.json").write_text(json.dumps({key: rules}))
    return tmp_path


@pytest.mark.parametrize("rules, code", [
    ([{"literal": "x", "category": "FRACTURE", "atributes": {}}], "R003"),
    ([{"literal": "x", "category": "BROKEN_BONE"}], "R005"),
    ([{"literal": "x", "category": "FRACTURE", "pattern": "(unclosed"}], "R006"),
    ([{"literal": "x", "category": "FRACTURE"}, {"literal": "x", "category": "FRACTURE"}], "R012"),
    ([{"literal": "x", "category": "FRACTURE", "attributes": {"scope": "galactic"}}], "R008"),
])
def test_rule_check_reports_problems(tmp_path, rules, code):
    problems = check_rules(_folder(tmp_path, "target", rules))
    assert any(problem.startswith(code) for problem in problems), problems


def test_rule_check_reports_a_rule_named_as_one_of_another_file(tmp_path):
    """Two files of one folder with the same (literal, category): the later would replace the earlier unseen."""
    rule = {"literal": "whether the fracture is old", "category": "PSEUDO", "direction": "PSEUDO"}
    folder = _folder(tmp_path, "context", [rule])
    (folder / "context" / "more.json").write_text(json.dumps({"context_rules": [{**rule, "pattern": "whether"}]}))
    problems = check_rules(folder)
    assert [problem[:4] for problem in problems] == ["R012"] and "extra.json" in problems[0], problems


def test_rule_check_reports_modifiers_of_two_categories_on_the_same_words(tmp_path):
    """ConText keeps one of two modifiers on the same words, whichever the rule order puts first."""
    held = {"literal": "withheld", "category": "MED_HELD", "direction": "BIDIRECTIONAL",
            "allowed_types": ["ANTICOAGULANT"]}
    corrected = {"literal": "Withheld", "category": "CORRECTED", "direction": "BIDIRECTIONAL",
                 "allowed_types": ["COAGULOPATHY", "ANTICOAGULANT"], "metadata": {"value": "held"}}
    problems = check_rules(_folder(tmp_path, "context", [held, corrected]))
    assert [problem[:4] for problem in problems] == ["R014"], problems
    # targets that cannot meet: no conflict
    corrected["allowed_types"] = ["COAGULOPATHY"]
    assert check_rules(_folder(tmp_path, "context", [held, corrected])) == []


@pytest.mark.parametrize("metadata, category, refused", [
    ({"dated": True}, "HISTORICAL", False),
    ({"dated": "yes"}, "HISTORICAL", True),
    ({"dated": True}, "NEGATED_EXISTENCE", True),
    ({"value": "treated", "course_over": True}, "CORRECTED", False),
    ({"course_over": True}, "HISTORICAL", True),
    ({"list": True}, "HYPOTHETICAL", False),  # the rule is FORWARD
])
def test_rule_check_reads_the_dated_course_over_and_list_marks(tmp_path, metadata, category, refused):
    rule = {"literal": "a year", "category": category, "direction": "FORWARD" if "list" in metadata else "BACKWARD",
            "pattern": "(?:19|20)\\d\\d", "metadata": metadata}
    problems = check_rules(_folder(tmp_path, "context", [rule]))
    assert any(problem.startswith("R010") for problem in problems) is refused, problems


def test_extra_rule_folder_adds_a_rule(tmp_path):
    folder = _folder(tmp_path, "target", [{"literal": "Kummell disease", "category": "FRACTURE",
                                           "attributes": {"anatomy": "vertebral"}}])
    from pipeline.nlp.pipeline import Extractor
    mentions = Extractor(patterns=[folder]).mentions("Kummell disease at T12.")
    assert find(mentions, "FRACTURE", "kummell")


def test_a_concept_set_is_written_once_and_expanded_where_it_is_named():
    """The past history and the "history of" rules leave out the same concepts: the manifest's `@ongoing`."""
    rules = load_rules()
    ongoing = read_manifest(patterns_dir())["concepts"]["ongoing"]
    assert rules.section_implies["past_history"]["except_concepts"] == ongoing
    history_of = next(rule for rule in rules.context if rule["literal"] == "history of")
    assert history_of["excluded_types"] == ongoing
    treated = next(rule for rule in rules.context if rule["literal"] == "treated")
    assert treated["allowed_types"] == ["COAGULOPATHY", "INFECTION", "ANTICOAGULANT"]
    assert not any(str(concept).startswith("@") for rule in rules.context
                   for key in ("allowed_types", "excluded_types") for concept in rule.get(key) or [])
    # the manifest says what the rules mean, so a run's rule hashes (its resume key) include it
    assert "manifest.toml" in rules.files


def test_an_extra_folder_uses_the_shipped_sets_and_its_own(tmp_path):
    rule = {"literal": "sometime ago", "category": "HISTORICAL", "direction": "FORWARD",
            "excluded_types": ["@ongoing", "@mine", "MALIGNANCY"]}
    folder = _folder(tmp_path, "context", [rule])
    (folder / "manifest.toml").write_text('[concepts]\nmine = ["FRACTURE", "PAIN"]\n'
                                          '[context]\nfiles = ["context/extra.json"]\n')
    assert check_rules(folder) == []
    loaded = next(r for r in load_rules([folder]).context if r["literal"] == "sometime ago")
    # in order, each once ("PAIN" is in both sets)
    assert loaded["excluded_types"] == ["OSTEOPOROSIS", "ANTICOAGULANT", "COAGULOPATHY", "PAIN", "FRACTURE",
                                        "MALIGNANCY"]
    from pipeline.nlp.pipeline import Extractor
    mentions = Extractor(patterns=[folder]).mentions(
        "Sometime ago an L1 compression fracture, osteoporosis and pneumonia.")
    historical = {m["concept"]: m["historical"] for m in mentions}
    assert historical == {"FRACTURE": False, "OSTEOPOROSIS": False, "INFECTION": True}, historical


@pytest.mark.parametrize("concepts, rule_types, code", [
    ('mine = ["FRACTURE"]', ["@theirs"], "R005"),       # a set nobody named
    ('mine = ["BROKEN_BONE"]', ["@mine"], "R005"),      # a set of a concept that does not exist
    ('mine = []', ["FRACTURE"], "R015"),                # an empty set
    ('mine = "FRACTURE"', ["FRACTURE"], "R015"),        # not a list
])
def test_rule_check_reports_concept_set_problems(tmp_path, concepts, rule_types, code):
    rule = {"literal": "sometime ago", "category": "HISTORICAL", "direction": "FORWARD", "allowed_types": rule_types}
    assert_manifest_problem(tmp_path, rule, f"[concepts]\n{concepts}", code)


def assert_manifest_problem(tmp_path, rule, table, code):
    """An extra folder with ``rule`` and a manifest ``table`` has exactly the problem ``code``, which
    ``load_rules`` refuses."""
    folder = _folder(tmp_path, "context", [rule])
    (folder / "manifest.toml").write_text(f'{table}\n[context]\nfiles = ["context/extra.json"]\n')
    problems = check_rules(folder)
    assert [problem[:4] for problem in problems] == [code], problems
    with pytest.raises(RuleError, match=code):
        load_rules([folder])


def test_a_word_list_is_written_once_and_expanded_where_it_is_named():
    """The family rules name the people around a patient from the manifest's `[words]`."""
    rules = load_rules()
    assert not any("{@" in rule["pattern"] for kind in (rules.target, rules.context, rules.sections)
                   for rule in kind if isinstance(rule.get("pattern"), str))
    relative = "(?:" + "|".join(read_manifest(patterns_dir())["words"]["relative"]) + ")"
    family = [rule for rule in rules.context if relative in str(rule.get("pattern"))]
    assert {rule["literal"] for rule in family} >= {"sister (aged 79)", "mother, who", "daughter asks"}


def test_an_extra_folder_uses_the_shipped_word_lists_and_its_own(tmp_path):
    rule = {"literal": "colleague", "category": "FAMILY", "direction": "FORWARD",
            "pattern": r"\b(?:{@workmate}|{@spouse})'s\b"}
    folder = _folder(tmp_path, "context", [rule])
    (folder / "manifest.toml").write_text("[words]\nworkmate = ['colleagues?', 'boss']\n"
                                          '[context]\nfiles = ["context/extra.json"]\n')
    assert check_rules(folder) == []
    loaded = next(r for r in load_rules([folder]).context if r["literal"] == "colleague")
    assert loaded["pattern"] == r"\b(?:(?:colleagues?|boss)|(?:wife|husband|spouse|partner))'s\b"
    from pipeline.nlp.pipeline import Extractor
    mentions = Extractor(patterns=[folder]).mentions("Her boss's L1 compression fracture.")
    assert [m["family"] for m in find(mentions, "FRACTURE")] == [True]


@pytest.mark.parametrize("words, pattern, code", [
    ("mine = ['boss']", "{@theirs}", "R005"),           # a list nobody named
    ("mine = []", "x", "R015"),                         # an empty list
    ("mine = 'boss'", "x", "R015"),                     # not a list
    ("Mine = ['boss']", "x", "R015"),                   # a name "{@Mine}" could not write
    ("mine = ['(boss']", "{@mine}", "R006"),            # a broken expression, reported once
])
def test_rule_check_reports_word_list_problems(tmp_path, words, pattern, code):
    rule = {"literal": "colleague", "category": "FAMILY", "direction": "FORWARD", "pattern": pattern}
    assert_manifest_problem(tmp_path, rule, f"[words]\n{words}", code)


def test_invalid_extra_folder_is_refused(tmp_path):
    folder = _folder(tmp_path, "target", [{"literal": "x", "category": "NOPE"}])
    with pytest.raises(RuleError, match="R005"):
        load_rules([folder])


def test_lab_values_take_linear_time_on_a_line_of_joining_words():
    from pipeline.nlp.labs import find_lab_values
    assert [(v.lab, v.value) for v in find_lab_values("INR  of  is  now  2.4 (H)")] == [("INR", 2.4)]
    # "(\s* word \s*)*" took exponential time on a line of joining words and no value: ten
    # of them took 5 s, thirty would not end. Run apart, so that a regression fails, not hangs.
    code = ("from pipeline.nlp.labs import find_lab_values\n"
            "for head in ('INR', 'PT', 'Platelets', 'PT/INR', 'PT / PTT / INR', 'Plt Ct'):\n"
            "    for filler in ('  of  ', ' : ', ' (H) ', ' is  was ', ' - ', ' (PT) ', ' .. ', '... ....'):\n"
            "        assert not find_lab_values(head + filler * 30 + 'x')\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60, check=True)


def test_a_fracture_written_against_another_bone_is_that_bones(extractor):
    mentions = find(extractor.mentions("Rib fractures and T12 compression fracture."), "FRACTURE")
    assert [m["lexical_variant"] for m in mentions] == ["compression fracture"]
    # a body fracture reaching a pedicle is still the body's
    burst = find(extractor.mentions("Burst fracture of T12 with involvement of the left pedicle."), "FRACTURE")
    assert [m["levels"] for m in burst] == [["T12"]]


def test_a_second_terminating_word_still_ends_a_scope(extractor):
    """medspaCy 1.3.1 let a modifier's scope run past a terminating word once another had limited it."""
    mentions = extractor.mentions("Patient has pneumonia but the fever resolved.")
    assert [(m["lexical_variant"], m["corrected"]) for m in find(mentions, "INFECTION")] == [
        ("pneumonia", ""), ("fever", "resolved")]


@pytest.mark.parametrize("text, concept, negated", [
    # an unticked box negates its item, up to the next box
    ("[ ] fever   [x] anticoagulation   [ ] known malignancy", "INFECTION", True),
    ("[ ] fever   [x] anticoagulation   [ ] known malignancy", "ANTICOAGULANT", False),
    ("[ ] fever   [x] anticoagulation   [ ] known malignancy", "MALIGNANCY", True),
    ("Checklist:\n[x] consent signed\n[ ] fever / active infection\n[x] on apixaban", "INFECTION", True),
    ("Checklist:\n[x] consent signed\n[ ] fever / active infection\n[x] on apixaban", "ANTICOAGULANT", False),
    ("[ ] retropulsion / posterior wall defect", "RETROPULSION", True),
    # a ticked box affirms; lab flags and references in brackets are not boxes
    ("[x] thrombocytopenia (plt 38)", "COAGULOPATHY", False),
    ("Osteomyelitis of L2 [1].", "INFECTION", False),
])
def test_a_checklist_box_says_whether_its_item_is_there(extractor, text, concept, negated):
    for mention in find(extractor.mentions(text, "PRE-PROCEDURE CHECKLIST"), concept):
        assert mention["negated"] == negated, f"{concept} in {text!r}"


@pytest.mark.parametrize("text, concept, attrs", [
    # 'suspected' closing its clause looks back, a few words only; 'not suspected' negates
    ("A: New axial pain in a myeloma patient - vertebral fracture suspected.", "FRACTURE", dict(uncertain=True)),
    ("A: New axial pain in a myeloma patient - vertebral fracture suspected.", "MALIGNANCY", dict(uncertain=False)),
    ("Infection suspected; cultures sent.", "INFECTION", dict(uncertain=True)),
    ("Suspected T12 fracture, MRI requested.", "FRACTURE", dict(uncertain=True)),
    ("The L1 fracture, suspected to be osteoporotic, is acute.", "FRACTURE", dict(uncertain=False)),
    ("- DIC not suspected: fibrinogen normal.", "COAGULOPATHY", dict(negated=True, uncertain=False)),
    # European shorthand: susp. (suspected), excl. (exclude)
    ("X-ray: susp. fresh impression fracture of Th8.", "FRACTURE", dict(uncertain=True, levels=["T8"])),
    ("Urgent MRI thoracic spine to excl. spinal cord compression.", "EPIDURAL_DISEASE", dict(uncertain=True)),
    ("Amoxicillin susp 250 mg tds for pneumonia.", "INFECTION", dict(uncertain=False)),
])
def test_suspicion_written_after_or_abbreviated(extractor, text, concept, attrs):
    assert_attrs(one(extractor, text, concept), attrs, text)


@pytest.mark.parametrize("text, levels", [
    ("Sintering of LWK 1 with approx. 25% loss of anterior height.", ["L1"]),
    ("Old wedge deformity of BWK 12.", ["T12"]),
    ("Painful sintering fracture LWK 1 of unclear age.", ["L1"]),
    ("- Th9: sintered vertebral body, approx. 30% height loss, unchanged.", ["T9"]),
])
def test_european_spellings_of_collapse_and_levels(extractor, text, levels):
    mentions = find(extractor.mentions(text, "MRI SPINE"), "FRACTURE")
    assert mentions and all(m["levels"] == levels for m in mentions), text
    assert not find(extractor.mentions("Slight sintering of the femoral stem of the hip prosthesis."), "FRACTURE")


def test_levels_an_abbreviation_ends_no_clause_and_a_level_keys_its_item(extractor):
    # "approx." does not cut the level from the finding; "PT." and "fx." still end a clause
    assert one(extractor, "T9: approx. 30% height loss.", "FRACTURE")["levels"] == ["T9"]
    assert one(extractor, "IMP: neg for fx. Mild L4-5 DDD.", "FRACTURE")["levels"] == []
    # a level that heads its item reaches the clauses after it
    text = "- Th6: radiotherapy 5 x 4 Gy; no vertebroplasty because of the epidural component."
    assert one(extractor, text, "EPIDURAL_DISEASE")["levels"] == ["T6"]
    text = "T12: old wedge deformity; L1: acute compression fracture with marrow oedema."
    assert [m["levels"] for m in find(extractor.mentions(text), "FRACTURE")] == [["T12"], ["L1"]]


def test_a_family_history_ends_with_its_paragraph(extractor):
    text = ("Family history: sister with multiple myeloma; mother with diabetes.\n\n"
            "Exams brought by the patient:\n- Labs: INR 2.9; platelets 148\n- X-ray: compression fracture of T8.")
    mentions = extractor.mentions(text, "REFERRAL LETTER")
    assert one(extractor, text, "MALIGNANCY")["family"]
    assert not any(m["family"] for m in mentions if m["concept"] in ("COAGULOPATHY", "FRACTURE"))
    # a heading alone on its line: its paragraph is the one after it
    text = "FAMILY HISTORY:\n\nOsteoporosis in her mother.\nSister with myeloma.\n\nSOCIAL HISTORY: nonsmoker"
    assert one(extractor, text, "MALIGNANCY")["family"]


@pytest.mark.parametrize("text, title, hypothetical", [
    # planned, requested or discussed: hypothetical
    ("Reason for consult: L1 VCF, eval for vertebral augmentation.", "IR CONSULT", True),
    ("Booked: L1 vertebroplasty - Thurs list 20/03.", "IR CLINIC", True),
    ("IR referral for T11 vertebroplasty - provisionally booked 2024-11-14.", "RHEUMATOLOGY", True),
    ("Procedure: L1 kyphoplasty (booked 04/03/2025, day case).", "IR PRE-ASSESSMENT CLINIC", True),
    ("Kyphoplasty remains an option if his pain plateaus.", "SPINE CLINIC", True),
    # done: the record of the procedure, the cement, a sign before or after it
    ("Procedure: L1 bipedicular balloon kyphoplasty.", "IR PROCEDURE NOTE", False),
    ("PROCEDURE:\n1. Balloon kyphoplasty at T12.\n\nBLOOD LOSS: Minimal", "", False),
    ("Cement within the L2 vertebral body.", "XR LUMBAR SPINE", False),
    ("Stable post-kyphoplasty L2.", "MRI", False),
    ("Satisfactory appearance after T11 vertebroplasty.", "MRI", False),
    ("HISTORY: T11 vertebroplasty 2024-11-12 for an osteoporotic fracture.", "MRI", False),
    ("L1 vertebroplasty intact. No acute fracture.", "IR CONSULT", False),
    ("She had an L1 kyphoplasty in March 2024.", "SPINE CLINIC LETTER", False),
])
def test_an_augmentation_not_shown_done_is_hypothetical(extractor, text, title, hypothetical):
    mentions = find(extractor.mentions(text, title), "PRIOR_AUGMENTATION")
    assert mentions, text
    assert mentions[0]["hypothetical"] == hypothetical, text


@pytest.mark.parametrize("text, values", [
    ("Labs: INR 2,9 ; platelets 148.000/mm3", [("INR", 2.9), ("platelets", 148.0)]),
    ("Thrombocytes 42.000/mm3 (L) | INR 1,2 | CRP 18", [("platelets", 42.0), ("INR", 1.2)]),
    ("Thrombocytes     212      G/l", [("platelets", 212.0)]),
    ("INR 1.2, 1.3 and 1.5 this week", [("INR", 1.2)]),
    # when the value was taken, between the name and the value
    ("Coumadin has been held and her INR this morning is 1.1 with a platelet count of 224.",
     [("INR", 1.1), ("platelets", 224.0)]),
    ("INR on admission was 3.2; platelets yesterday 88.", [("INR", 3.2), ("platelets", 88.0)]),
    ("INR checked 1.4.", [("INR", 1.4)]),
    ("INR this morning pending.", []),
])
def test_lab_values_with_a_decimal_comma_and_thrombocytes(text, values):
    from pipeline.nlp.labs import find_lab_values
    assert [(v.lab, v.value) for v in find_lab_values(text)] == values


@pytest.mark.parametrize("text, acuity, uncertain", [
    # the age asked, in any pairing: indeterminate, and its "?" asks about the age only
    ("A) Osteoporotic compression fractures T12, L4 - acute vs old?", "indeterminate", False),
    ("T12 fracture - new or old? MRI requested.", "indeterminate", False),
    ("Fresh or old T12 fracture on the radiograph.", "indeterminate", False),
    ("L1 compression fracture, acute/chronic.", "indeterminate", False),
    ("?T12 fracture.", "", True),
])
def test_an_age_asked_is_indeterminate(extractor, text, acuity, uncertain):
    mention = one(extractor, text, "FRACTURE")
    assert (mention["acuity"], mention["uncertain"]) == (acuity, uncertain), text


def test_levels_a_level_measured_against_is_not_the_fractures(extractor):
    text = "Compression fracture of L1 with approx. 40% reduction of anterior height compared with L2."
    assert all(m["levels"] == ["L1"] for m in find(extractor.mentions(text), "FRACTURE"))


@pytest.mark.parametrize("text, concept, attrs", [
    # someone else's illness
    ('Husband at bedside, states he is "just getting over pneumonia" - mask provided.', "INFECTION",
     dict(family=True)),
    ("Her roommate had pneumonia last week.", "INFECTION", dict(family=True)),
    # ... not the patient's, told by a spouse or brought in by others
    ("Wife states she has had a cough; patient denies fever.", "INFECTION", dict(family=False, negated=True)),
    ("He was brought in by his coworkers after he had vomiting and fever.", "INFECTION", dict(family=False)),
    # a fear is not a finding
    ("my mom had those spine fractures and im scared I have a fracture like she did.", "FRACTURE",
     dict(uncertain=True, family=False)),
    # the age asked
    ("An MRI to see how old the L2 fracture is.", "FRACTURE", dict(acuity="indeterminate")),
    # a problem heading and its state are one sentence
    ("Pneumonia: abx course completed 6/7, resolved per CXR.", "INFECTION", dict(corrected="treated")),
    ("UTI: treated with nitrofurantoin.", "INFECTION", dict(corrected="treated")),
    # ... and the words of another heading stay out of its text
    ("Procedure planned: T12 balloon kyphoplasty for acute compression fractures.", "FRACTURE",
     dict(hypothetical=False)),
    ("CT L-spine w/o: compression fx of L1.", "FRACTURE", dict(negated=False)),
])
def test_other_people_fears_and_problem_states(extractor, text, concept, attrs):
    mentions = find(extractor.mentions(text, "PROGRESS NOTE"), concept)
    assert mentions, text
    assert_attrs(mentions[-1], attrs, text)


@pytest.mark.parametrize("text, acuity, new", [
    # "new" is acute (SPEC §4): the acuity says so, and the flag stays
    ("There is a new compression fracture of T12.", "acute", True),
    ("New T11 pathologic fracture with retropulsion.", "acute", True),
    # ... unless an age is written, or the fracture is denied, asked about or a risk
    ("L4 compression deformity, new since 2019, age indeterminate.", "indeterminate", False),
    ("No new compression fracture.", "", True),
    ("?new L1 fracture.", "", True),
])
def test_a_new_fracture_is_acute(extractor, text, acuity, new):
    mention = one(extractor, text, "FRACTURE", title="MRI SPINE")
    assert (mention["acuity"], mention["new"]) == (acuity, new), text


def test_a_discontinued_medication_is_not_current(extractor):
    text = "MEDICATIONS\n  apixaban 5 mg bid\n\nDISCONTINUED MEDICATIONS\n  enoxaparin 40 mg SC daily (stop 06/26)"
    by_drug = {m["lexical_variant"]: m for m in find(extractor.mentions(text, "OT NOTE"), "ANTICOAGULANT")}
    assert not by_drug["apixaban"]["historical"] and by_drug["enoxaparin"]["historical"]
    assert by_drug["enoxaparin"]["section"] == "medications"


def test_levels_not_the_s_of_a_saints_name():
    from pipeline.nlp.levels import find_level_groups
    assert find_level_groups("Admitted from St Luke's 2/3 s/p fall") == []


def test_levels_spelled_out_by_speech_recognition(extractor):
    text = ("FINDINGS there is a new compression fracture of T twelve. Known chronic L one compression "
            "deformity with mild retropulsion.")
    mentions = extractor.mentions(text, "XR THORACOLUMBAR SPINE")
    assert [m["levels"] for m in find(mentions, "FRACTURE")] == [["T12"], ["L1"]]
    assert one(extractor, text, "RETROPULSION")["levels"] == ["L1"]
    # not a level: a vitamin's dose, a sequence, a number in words
    from pipeline.nlp.levels import find_level_groups
    assert [g.levels for g in find_level_groups("Vitamin C one daily; T one weighted images; at one point")] == []


def test_levels_a_forms_level_field_on_the_mentions_line(extractor):
    text = "Level: T9. Pathologic fracture (subacute), STIR signal persists."
    assert one(extractor, text, "FRACTURE", title="MRI THORACIC SPINE")["levels"] == ["T9"]
    text = "Fracture on MRI: [x] yes   Level: T11   Age: [x] acute (STIR +)"
    assert one(extractor, text, "FRACTURE", title="MRI THORACIC SPINE")["levels"] == ["T11"]
    # a field on another line is another item's (in a note that names more than one level)
    text = "Level: T9.\nPathologic fracture, STIR signal persists. Cement in L2 from 2021."
    assert one(extractor, text, "FRACTURE", title="MRI THORACIC SPINE")["levels"] == []


def test_an_icd_titles_classification_words_negate_nothing(extractor):
    text = ("M48.56XA Collapsed vertebra, not elsewhere classified, lumbar region, "
            "initial encounter for fracture")
    fractures = [m for m in extractor.mentions(text, "PROBLEM LIST") if m["concept"] == "FRACTURE"]
    assert len(fractures) == 2
    assert not any(m["negated"] for m in fractures)
    # a real negation after such a title still negates
    text = "Pathological fracture, not otherwise specified. No fracture of the sacrum."
    fractures = [m for m in extractor.mentions(text, "PROBLEM LIST") if m["concept"] == "FRACTURE"]
    assert [m["negated"] for m in fractures] == [False, True]


@pytest.mark.parametrize("text, concept, needle, levels", [
    # a fusion's levels, a posterior element's and a curvature's range are not the fracture's
    ("1. Acute L2 burst fracture (junctional level above L3-L5 fusion) with 40% height loss and 6 mm "
     "retropulsion narrowing the canal.", "RETROPULSION", None, ["L2"]),
    ("1. Acute L2 burst fracture (junctional level above L3-L5 fusion) with 40% height loss and 6 mm "
     "retropulsion narrowing the canal.", "FRACTURE", "height loss", ["L2"]),
    ("74M D1 post fall. Acute junctional L2 burst # + L1 TP #.", "FRACTURE", "burst", ["L2"]),
    ("Pedicle screws at L3 and L4 with new fracture of L2 and marrow edema.", "OEDEMA", None, ["L2"]),
    ("Acute fracture of the L2 vertebral body. 40% loss of anterior vertebral body height with focal "
     "kyphosis of 14 degrees at L1-L3.", "FRACTURE", "loss", ["L2"]),
    # ... a single level after an angle is the fracture's, and an adjective is not a curvature
    ("Kyphotic angulation at T12 compression fracture.", "FRACTURE", None, ["T12"]),
    ("Issues: COPD, thoracic kyphosis, osteoporosis with previous T8/L1 vertebral fractures.", "FRACTURE",
     None, ["T8", "L1"]),
    # a location class of the SINS is not a level
    ("SINS score:\n Location (T3-T10, semi-rigid)        1\n Vertebral body collapse (<50%)      2",
     "FRACTURE", None, []),
])
def test_levels_of_a_fusion_a_posterior_element_or_a_curvature(extractor, text, concept, needle, levels):
    assert one(extractor, text, concept, "CT LUMBAR SPINE", needle)["levels"] == levels, text


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # a form's answers: boxes answered Y/N, dot leaders, columns, ticked "none"
    ("EXCLUSION (all must be N)\n [N] 1. Retropulsion / posterior wall defect on CT or MRI", "RETROPULSION",
     None, dict(negated=True)),
    ("[Y] 6. Neurological deficit / cord compression", "EPIDURAL_DISEASE", None, dict(negated=False)),
    ("5. Absence of contraindications:\n    - active infection ............................. NONE",
     "INFECTION", None, dict(negated=True)),
    ("    - retropulsion / posterior wall compromise ...... NOT ASSESSED (plain films)", "RETROPULSION", None,
     dict(negated=False, uncertain=True)),
    ("E2  Known malignancy / suspected metastasis                             NO\nE3  Fever   YES",
     "MALIGNANCY", "malignancy", dict(negated=True)),
    ("E2  Known malignancy                 NO\nE3  Fever                  YES", "INFECTION", None,
     dict(negated=False)),
    ("I2  Acute VCF confirmed on MRI with STIR oedema at the\n    fracture level          NO - see note",
     "FRACTURE", "VCF", dict(negated=True)),
    ("Anticoagulants/antiplatelets: [x] none", "ANTICOAGULANT", None, dict(negated=True)),
    ("Fever: [ ] yes [x] no", "INFECTION", None, dict(negated=True)),
    ("Fever: [x] yes [ ] no", "INFECTION", None, dict(negated=False)),
    # ... but a "no" that starts its item's words negates them, and prose keeps its sentences
    ("[x] No local infection (osteomyelitis / discitis)                Y", "INFECTION", "osteomyelitis",
     dict(negated=True)),
    ("Focal lesions ........ No lytic lesions.", "MALIGNANCY", None, dict(negated=True)),
    ("Compression fracture of L1.   No retropulsion.", "FRACTURE", None, dict(negated=False)),
    ("The posterior wall at T12 is obscured by ribs and retropulsion cannot be assessed on this study.",
     "RETROPULSION", None, dict(uncertain=True)),
    ("Acute L1 fracture with marrow oedema; posterior wall not assessed.", "FRACTURE", None,
     dict(uncertain=False)),
])
def test_a_forms_answers(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "RESEARCH SCREENING LOG", needle), attrs, text)


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # text for patients and payers' criteria are about anyone
    ("WHAT ARE THE RISKS?\nSerious complications are uncommon. They include:\n - Infection at the needle site\n"
     " - New fractures in nearby vertebrae", "FRACTURE", None, dict(hypothetical=True)),
    ("WHAT ARE THE RISKS?\nSerious complications are uncommon. They include:\n - Infection at the needle site",
     "INFECTION", None, dict(hypothetical=True)),
    ("Vertebral augmentation is considered medically necessary for a painful osteoporotic vertebral "
     "compression fracture when ALL of the following are met: (a) fracture age confirmed by MRI.",
     "FRACTURE", "compression", dict(hypothetical=True)),
    ("Advised re: signs of wound infection, call DSU or GP.", "INFECTION", None, dict(hypothetical=True)),
    # ... while the note's own text after the pasted block is the patient's
    ("WHAT IS KYPHOPLASTY?\nKyphoplasty is a treatment for painful compression fractures.\n\n"
     "Acute L1 burst fracture on MRI 02/05.", "FRACTURE", "burst", dict(hypothetical=False)),
    ("There are signs of wound infection.", "INFECTION", None, dict(hypothetical=False)),
    # a rated risk is not a risk of the drug
    ("Clopidogrel continued (low-risk procedure).", "ANTICOAGULANT", None,
     dict(hypothetical=False, med_status="continued")),
    # a course finished is over
    ("Finished 10 days enoxaparin 30/08, no issues.", "ANTICOAGULANT", None, dict(historical=True)),
    ("Completed her enoxaparin course last month.", "ANTICOAGULANT", None, dict(historical=True)),
    ("Resume warfarin when cleared by spine.", "ANTICOAGULANT", None, dict(historical=False)),
    ("Atrial fibrillation on warfarin, previously treated with L1 kyphoplasty.", "ANTICOAGULANT", None,
     dict(historical=False)),
    ("Warfarin held for 5 days.", "ANTICOAGULANT", None, dict(historical=False, med_status="held")),
    # the levels after "previous" are part of the cue; "post-" an infection is what it left
    ("Issues: osteoporosis with previous T8/L1 vertebral fractures.", "FRACTURE", None, dict(historical=True)),
    ("Compared with the prior study, new L1 fracture.", "FRACTURE", None, dict(historical=False)),
    ("Degenerative/post-discitis change L4/5.", "INFECTION", None, dict(historical=True)),
    ("L4/5 microdiscectomy complicated by post-op discitis.", "INFECTION", None, dict(historical=False)),
    ("Stable post-kyphoplasty L2.", "PRIOR_AUGMENTATION", None, dict(historical=False)),
    # alternatives ranked lower
    ("Degenerative endplate change is favored over early discitis.", "INFECTION", None, dict(uncertain=True)),
    ("Modic type 1 change L4-L5. Early discitis considered less likely; recommend ESR/CRP.", "INFECTION", None,
     dict(uncertain=True)),
    ("The differential is a Schmorl's node or a mild compression fracture.", "FRACTURE", None,
     dict(uncertain=True)),
    ("Pt preferred to defer vertebroplasty; remains a vertebroplasty candidate.", "PRIOR_AUGMENTATION", None,
     dict(uncertain=False)),
    # a stated cause outranks "pathological"
    ("M80.08XA Age-related osteoporosis with current pathological fracture, vertebra(e), initial "
     "encounter for fracture", "FRACTURE", "pathological", dict(aetiology="osteoporotic")),
    ("Pathological fracture of L2 due to osteoporosis.", "FRACTURE", None, dict(aetiology="osteoporotic")),
    ("Pathologic fracture L1 from metastasis in an osteoporotic patient.", "FRACTURE", None,
     dict(aetiology="malignant")),
])
def test_documents_about_anyone_courses_over_and_ranked_alternatives(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "CLINIC NOTE", needle), attrs, text)


@pytest.mark.parametrize("text, concept", [
    # metabolic equivalents are not metastases
    ("Assessment: ASA 3. RCRI 1. METs >4. Functional capacity 4 METs; can climb 2 flights (>4 METs).",
     "MALIGNANCY"),
    # scar after surgery is not epidural disease
    ("Thin linear dorsal epidural enhancement at L4-5 without a drainable component, likely postoperative "
     "granulation.", "EPIDURAL_DISEASE"),
    ("Epidural fibrosis at L5-S1.", "EPIDURAL_DISEASE"),
    # wedging explained as physiological or Scheuermann's is not a fracture
    ("Mild anterior wedging of T11 and T12 with smooth, intact endplates, within the physiological range "
     "at the thoracolumbar junction.", "FRACTURE"),
    ("Anterior wedging of T7, T8 and T9 with irregular endplates and multiple Schmorl's nodes, in keeping "
     "with old Scheuermann's disease.", "FRACTURE"),
    # nor a fracture of an ossified interspinous ligament
    ("Increased STIR signal along the fractured interspinous ossification at T11-T12.", "FRACTURE"),
])
def test_look_alikes_are_not_mentions(extractor, text, concept):
    assert find(extractor.mentions(text, "MRI SPINE"), concept) == [], text


@pytest.mark.parametrize("text, concept", [
    ("T3/L2 mets. Bone + lung mets 06/2025.", "MALIGNANCY"),
    ("Rim-enhancing epidural collection and epidural enhancement at L4-5 consistent with phlegmon.",
     "EPIDURAL_DISEASE"),
    ("Acute wedge compression fracture of T12; congenital butterfly vertebra at T8.", "FRACTURE"),
    ("Mild wedging of L1, likely acute. Physiological wedging elsewhere.", "FRACTURE"),
])
def test_what_the_look_alike_rules_leave(extractor, text, concept):
    assert find(extractor.mentions(text, "MRI SPINE"), concept), text


def test_a_checklist_answered_by_a_mark_under_its_column(extractor):
    text = ("                                        Y    N    N/A\n"
            "Consent form signed                     x\n"
            "Anticoagulant in last 7 days                 x\n"
            "Current infection / on antibiotics           x\n"
            "Known bleeding disorder                           x\n"
            "Fever in last 48 h                      x\n"
            "\n"
            "Warfarin restarted after the procedure.")
    by_concept = {m["concept"]: m for m in extractor.mentions(text, "IR PRE-PROCEDURE CHECKLIST")}
    assert by_concept["ANTICOAGULANT"]["negated"] is False  # the last line is past the grid
    flags = {(m["concept"], m["lexical_variant"]): (m["negated"], m["hypothetical"])
             for m in extractor.mentions(text, "IR PRE-PROCEDURE CHECKLIST")}
    assert flags[("ANTICOAGULANT", "Anticoagulant")] == (True, False)
    assert flags[("INFECTION", "Current infection")] == (True, False)
    assert flags[("COAGULOPATHY", "bleeding disorder")] == (False, True)
    assert flags[("INFECTION", "Fever")] == (False, False)


def test_a_checklist_answered_by_a_box_under_its_column(extractor):
    # the list's name before the column heads; boxes, one ticked per row
    text = ("Pre-infusion screen (nurse)               Y    N\n"
            "  Fever / unwell in last 72 h           [ ]  [x]\n"
            "  Current infection / on antibiotics     [ ]  [x]\n"
            "  Anticoagulant                          [x]  [ ]\n"
            "\n"
            "Cough today, started amoxicillin.")
    flags = {m["lexical_variant"]: m["negated"] for m in extractor.mentions(text, "PRE-INFUSION ASSESSMENT")}
    assert flags["Fever"] is True
    assert flags["Current infection"] is True
    assert flags["Anticoagulant"] is False  # ticked under Y


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # a consent's list under its heading, a relative with a bracket, a course finished
    ("Consent discussed by IR reg (Dr Pillay): bleeding, cement leakage,\ninfection, nerve injury.", "INFECTION",
     None, dict(hypothetical=True)),
    ("Her sister (aged 79) has recently had two vertebral fractures and I have suggested she asks her GP.",
     "FRACTURE", None, dict(family=True)),
    ("Contributing factors: finished a\n7-day course of cipro for UTI at the end of Dec.", "INFECTION", None,
     dict(corrected="treated")),
    # the age: denied signs of an old fracture say nothing; "unable to age it"; ", old" after it
    ("CT: T12 superior endplate fracture with ~35% height loss, no sclerotic margins.", "FRACTURE", "endplate",
     dict(acuity="")),
    ("L1 compression deformity - radiology unable to age it.", "FRACTURE", None, dict(acuity="indeterminate")),
    ("  3. T10 wedge fracture, old (present on MRI 2024, unchanged)", "FRACTURE", None, dict(acuity="chronic")),
    # an age after a semicolon reads back, over a likeness to a recent study
    ("Mild compression deformity of L1, similar in appearance to the CT of 06/10/2025; age remains "
     "indeterminate radiographically.", "FRACTURE", None, dict(acuity="indeterminate")),
    ("Acute L1 fracture; chronic T12 deformity.", "FRACTURE", "fracture", dict(acuity="acute")),
    # an infection that has settled, a course completed at the end of a long item, a "Past:" list
    ("The line infection has settled, no fevers since the end of January.", "INFECTION", "infection",
     dict(corrected="resolved")),
    ("2. Catheter-related MSSA bacteraemia Jan 2025 - line salvaged, 14 days\n   vancomycin completed 28/01.",
     "INFECTION", None, dict(corrected="treated")),
    ("Past: PD (ESKD), PD peritonitis 2023, Parkinson's disease, HTN.", "INFECTION", None,
     dict(historical=True)),
    # a checklist field answered N, a pain "she had before"
    ("Active infection / fever in last 48h: N\nINR: 1.0", "INFECTION", "fever", dict(negated=True)),
    ("Back pain. Says it does not feel like the fracture pain she had before, at T11.", "FRACTURE", None,
     dict(historical=True)),
    # a three-space column gap's answer, an infection weeks ago, one a follow-up after an admission names
    ("Warfarin withheld (last dose 21/08)  Y\nFever / UTI symptoms in last 7 days   N\n", "INFECTION", "UTI",
     dict(negated=True)),
    ("Had chest infection 3/52 ago - seen by the co-op 17/03, doxycycline 5 days.", "INFECTION", None,
     dict(historical=True)),
    ("Fell three weeks ago; L1 compression fracture on CT.", "FRACTURE", None, dict(historical=False)),
    ("CC: Post-hospital follow-up (CAP/AECOPD); new low back pain.", "INFECTION", None, dict(historical=True)),
    ("Reviewed eight weeks after her admission with an infective exacerbation and left lower lobe pneumonia.",
     "INFECTION", "pneumonia", dict(historical=True)),
    ("Two days after admission with pneumonia she fell.", "INFECTION", None, dict(historical=False)),
    # patients in general, what a procedure is for
    ("Stopping denosumab can lead to a rebound and, in some patients, multiple vertebral fractures.", "FRACTURE",
     None, dict(hypothetical=True)),
    ("Explained that kyphoplasty is for a recent painful fracture and there is no new fracture.", "FRACTURE",
     None, dict(hypothetical=True)),
    ("Kyphoplasty is for the L1 fracture, booked Tuesday.", "FRACTURE", None, dict(hypothetical=False)),
    # a consent list ending in "risks"; not the verb, nor the procedure's risks; a capacity assessment
    ("Has capacity regarding kyphoplasty (discussed with IR; understands procedure, cement leak, infection, "
     "bleeding and adjacent-level fracture risks).", "INFECTION", None, dict(hypothetical=True)),
    ("Active infection increases the procedural risks.", "INFECTION", None, dict(hypothetical=False)),
    ("Osteomyelitis at the target level - injecting cement into infected bone risks\nspreading it.",
     "INFECTION", "Osteomyelitis", dict(hypothetical=False)),
    ("She lacks capacity for decisions about treatment of the spinal fractures.", "FRACTURE", None,
     dict(negated=False)),
    # a test or a watch for a cancer; a differential under its heading, on its line; a patient's belief
    ("Bloods: adj Ca 2.38, vitamin D and myeloma screen sent.", "MALIGNANCY", None, dict(hypothetical=True)),
    ("6-monthly ultrasound for HCC surveillance.", "MALIGNANCY", None, dict(hypothetical=True)),
    ("Known multiple myeloma, screening bloods today.", "MALIGNANCY", None, dict(hypothetical=False)),
    ("Imp: TB spondylodiscitis D11-D12.\n  D/D: metastasis.\nAdv: MRI.", "MALIGNANCY", None, dict(uncertain=True)),
    ("Ddx: vertebral fx, lumbar strain.\nCT as above: L2 compression fx without canal compromise.", "FRACTURE",
     "compression", dict(uncertain=False)),
    ("D/D: brucellar spondylitis. No features to suggest metastasis.", "MALIGNANCY", None,
     dict(uncertain=False, negated=True)),
    ("Extensive investigation normal; convinced she has bone cancer and that her spine is collapsing.",
     "MALIGNANCY", None, dict(uncertain=True)),
    ("Thoughts: preoccupied with spinal collapse and hidden cancer.", "MALIGNANCY", None, dict(uncertain=True)),
    # an indented heading heads its section; a pulse written "P - 86/min" is not a plan
    ("Findings: normal alignment.\n  Plan: MRI to look for an L1 fracture.", "FRACTURE", None,
     dict(hypothetical=True)),
    ("O/E: Conscious.\n     P - 86/min, BP - 150/90 mm Hg.\n     X-ray: wedge compression fracture D12.",
     "FRACTURE", None, dict(hypothetical=False)),
    # empirical antibiotics, a relative's guess, an infection's follow-up, what may happen, statements in general
    ("Concern for spinal infection. IV ceftriaxone started empirically pending MRI.", "INFECTION", "IV ceftriaxone",
     dict(uncertain=True)),
    ("Initially on IV meropenem 27/09-29/09 (empirical for fever with line in situ).", "INFECTION", "fever",
     dict(uncertain=False)),
    ("My grand-daughter thinks I have got a water infection as it stings.", "INFECTION", None, dict(uncertain=True)),
    ("Pneumonia f/u + new back pain.", "INFECTION", None, dict(historical=True)),
    ("- An acute phase reaction can occur 24-72 h after the first dose: fever, flu-like aches.", "INFECTION", None,
     dict(hypothetical=True)),
    ("A sacral insufficiency fracture is a common culprit after backward falls.", "FRACTURE", None,
     dict(hypothetical=True)),
    ("Locally teriparatide requires two or more vertebral fractures and she has one.", "FRACTURE", None,
     dict(hypothetical=True)),
    # an illness told as past; a relative's history across a line wrap
    ("The subject had an episode of pneumonia (non-serious AE #6), treated by the GP.", "INFECTION", None,
     dict(historical=True)),
    ("Osteoporosis confirmed by DEXA. The family\n  history of vertebral fractures (mother) is noted.", "FRACTURE",
     None, dict(family=True)),
    # a consent's risks "for" the patient, listed after a colon
    ("Spinal fusion carries significant risks for Amelia: blood loss, deep wound infection (5-10%).", "INFECTION",
     None, dict(hypothetical=True)),
    # an age after the brackets a fracture is written in is the bracket's head's
    ("Back pain 4/10 (known L1 #), unchanged.", "FRACTURE", None, dict(acuity="")),
    ("L1 fracture (known), unchanged.", "FRACTURE", None, dict(acuity="chronic")),
    # a person's age is not a fracture's; a fracture's own age still is
    ("78 year old woman with compression fracture of L1.", "FRACTURE", None, dict(acuity="")),
    ("HPI: 81-year-old man with T12 compression fracture after a fall.", "FRACTURE", None, dict(acuity="")),
    ("Old compression fracture of L1.", "FRACTURE", None, dict(acuity="chronic")),
    # another illness's, a service's or a setting's "acute", a patient's or an injury's stability
    ("Admitted with acute kidney injury and L1 compression fracture.", "FRACTURE", None, dict(acuity="")),
    ("Acute rehab admission after L1 compression fracture.", "FRACTURE", None, dict(acuity="")),
    ("Acute myeloid leukemia with L1 compression fracture.", "FRACTURE", "compression", dict(acuity="")),
    ("Discharged to subacute rehab after L1 compression fracture.", "FRACTURE", None, dict(acuity="")),
    ("Neurologically stable with L1 compression fracture.", "FRACTURE", None, dict(acuity="")),
    ("Stable L1 burst fracture, no retropulsion.", "FRACTURE", None, dict(acuity="")),
    ("Acute on chronic L1 compression fracture.", "FRACTURE", None, dict(acuity="acute")),
    ("L1 compression fracture, stable compared with prior.", "FRACTURE", None, dict(acuity="chronic")),
    # an imaging request's "Eval" asks
    ("INDICATION: bacteremia, new T11 compression fracture on CT. Eval\nacuity, osteomyelitis/discitis.",
     "INFECTION", "osteomyelitis", dict(uncertain=True)),
])
def test_consents_relatives_courses_and_ages(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "MRI THORACIC SPINE", needle), attrs, text)


@pytest.mark.parametrize("text, levels", [
    # the one level a note names is its level-less fracture's
    ("SPECIMEN: L1 vertebral body, core biopsy.\nDIAGNOSIS: Benign bone with reparative callus at a recent "
     "fracture site.", [["L1"]]),
    # ... not when its sentence names another region, nor across an age that says it is another fracture
    ("XR: L1 compression fracture. There is also a fracture of the sacrum.", [["L1"], []]),
    ("L4: old compression fracture, healed (2019).\nPlan: fall w/ two acute thoracolumbar fractures.",
     [["L4"], []]),
    # in a note naming several, the fractures it describes: those of its age, else the unaged ones, or all
    ("1. Acute T12 compression fracture.\n2. Old L2 wedge fracture.\n3. FLS: a new vertebral fracture on "
     "alendronate - switch to zoledronate.", [["T12"], ["L2"], ["T12"]]),
    ("Wedge fractures of T7 and T8." + " Bone density is below the expected range for age." * 7
     + " Low BMD with significant vertebral fractures meets the ISCD definition.", [["T7", "T8"], ["T7", "T8"]]),
    ("Compression fractures of T12 and L1." + " Discs and facets are unremarkable." * 9
     + " The vertebral fractures are acute.", [["T12", "L1"], ["T12", "L1"]]),
    ("T12 and L3 compression fractures. Collapsed vertebra, lumbar region.", [["T12", "L3"], ["L3"]]),
    # a fracture in brackets right after a level is that level's (a list's last item's)
    ("FDG-avid bone metastases at T4, T9 (with pathological fracture), L3 and the right iliac wing.", [["T9"]]),
    ("Known old T8/T9 compression fractures unchanged, L3 (old fracture, kyphoplasty 2015) stable.",
     [["T8", "T9"], ["L3"]]),
    ("Hx osteoporotic fx T12 (kyphoplasty 2019) and L3.", [["T12", "L3"]]),
    # a stabilisation's levels and a scan's extent are not the fracture's
    ("A: POD 2 posterior stabilisation T12-L2 for L1 burst fracture.", [["L1"]]),
    ("L1 compression fracture, approximately 30% anterior height loss, age indeterminate - no previous imaging "
     "(MRI in July stopped at T12).", [["L1"], ["L1"]]),
    # ... a past one only the past fractures', and not a current one's
    ("Acute L1 and T8 fractures.\nPMH: OP with previous vertebral fractures (details unavailable).",
     [["T8", "L1"], []]),
    ("PMH: T12 and L1 compression fractures (2019, lifting).\n\nIMPRESSION:\nBack pain on and off since his "
     "vertebral fractures in 2019.", [["T12", "L1"], ["T12", "L1"]]),
    ("History of T11 compression fracture in 2018. New L2 compression fracture. Previous vertebral fractures "
     "noted in 2015.", [["T11"], ["L2"], ["T11"]]),
    ("Chronic T11 and L2 compression fractures, history of L4 compression fracture treated with kyphoplasty.\n\n"
     "IMPRESSION:\nGiven alendronate and three vertebral fractures, not a candidate for a drug holiday.",
     [["T11", "L2"], ["L4"], ["T11", "L2"]]),
])
def test_levels_of_the_notes_fractures_and_of_the_fracture_before(extractor, text, levels):
    mentions = find(extractor.mentions(text, "PATHOLOGY", "2025-07-08"), "FRACTURE")
    assert [m["levels"] for m in mentions] == levels, text


@pytest.mark.parametrize("text, concept", [
    ("3. Parkinson's / falls - PT/OT. Retropulsion is his\n   baseline per neuro notes.", "RETROPULSION"),
    ("MDS-UPDRS part III (ON): 34 (previously 29).", "MALIGNANCY"),
    ("Old healed fracture of the L L2 transverse process.", "FRACTURE"),
    ("There is a minimally displaced fracture through the right L3 transverse process.", "FRACTURE"),
    ("Standing balance: marked retropulsion when eyes closed and on reaching.", "RETROPULSION"),
    ("Care plan meeting. Attendees: DON, MDS coordinator, PT, dietitian.", "MALIGNANCY"),
    # gait retropulsion on turning, with a rollator, in a falls risk
    ("Walking with rollator + 1, retropulsion on turning persists.", "RETROPULSION"),
    ("Risperidone: increased stroke and falls risk (AF, prior #NOF, retropulsion).", "RETROPULSION"),
    # the specialty and its view; wedging a kyphosis explains; a long bone's shaft
    ("INFECTION CLINIC LETTER\nFrom an infection point of view there is no reason to delay vertebroplasty.",
     "INFECTION"),
    ("Mild anterior wedging of the T6-T8 vertebral bodies in keeping with the thoracic kyphosis.", "FRACTURE"),
    ("Left femur: callus formation at the mid-shaft fracture.", "FRACTURE"),
    # a posterior element's fracture named in a bracket after it
    ("ACC claim accepted. Diagnosis on claim: Fracture lumbar spine, closed (R TP L2, L3) + # rib.", "FRACTURE"),
    ("# Lumbar fx (L2-L3 TP) - pain control: APAP 1 g q8h.", "FRACTURE"),
    # an inhaler's capsule in a VA medication list
    ("  3) TIOTROPIUM 18MCG INHL CAP INHALE CONTENTS OF ONE CAPSULE DAILY  ACTIVE", "INFECTION"),
    # a height loss where nothing vertebral is named
    ("Imp: Mid back pain, height loss, long-term steroids.", "FRACTURE"),
    # the patient's stature, not a vertebra's height
    ("Menopause age 49, no HRT. Height loss 3 cm by her report.", "FRACTURE"),
    ("CLINICAL NOTES: 58F, 3 cm height loss. DXA requested.", "FRACTURE"),
    ("Indication: height loss of 2 inches, kyphosis.", "FRACTURE"),
])
def test_more_look_alikes(extractor, text, concept):
    assert find(extractor.mentions(text, "PROGRESS NOTE"), concept) == [], text


@pytest.mark.parametrize("text, date, concept, historical", [
    # a year after a finding dates it, when the date is more than six months before the note's
    ("Hx: L1 compression fracture 2021 treated with kyphoplasty at Mercy.", "2024-03-12", "FRACTURE", True),
    ("Old T12 fracture (2019).", "2024-03-12", "FRACTURE", True),
    ("L1 fracture March 2021.", "2024-03-12", "FRACTURE", True),
    ("L2 fracture 03/2021.", "2024-03-12", "FRACTURE", True),
    ("MRSA bacteremia 2018, treated.", "2024-03-12", "INFECTION", True),
    ("L1 fracture 2021.", None, "FRACTURE", True),  # no note date: as written
    # a recent date is not history, whichever rule reads it
    ("L1 compression fracture 2024.", "2024-03-12", "FRACTURE", False),
    ("L1 compression fracture Sep 2023.", "2024-03-12", "FRACTURE", False),
    ("Discitis dx 01/2024, on IV antibiotics.", "2024-03-12", "INFECTION", False),
    ("Discitis dx 01/2021, treated.", "2024-03-12", "INFECTION", True),
    # a year compared with, a range, a dose
    ("New T7 compression deformity since March 2021.", "2024-03-12", "FRACTURE", False),
    ("L1 fracture, new compared to 2019.", "2024-03-12", "FRACTURE", False),
    ("L1 fracture 2019-2024 follow-up series.", "2024-03-12", "FRACTURE", False),
    ("Vancomycin 2000 mg for discitis.", "2024-03-12", "INFECTION", False),
    # an infection dated right after it is the past beyond the screening window, unless treatment goes on
    ("1. MSSA bacteraemia, Feb 2025 - 6 weeks IV ceftriaxone then oral.", "2025-07-03", "INFECTION", True),
    ("MSSA bacteraemia, Jun 2025 - IV flucloxacillin.", "2025-07-03", "INFECTION", False),
    ("Discitis 01/2025, on IV antibiotics.", "2025-03-12", "INFECTION", False),
    ("L1 fracture Feb 2025.", "2025-07-03", "FRACTURE", False),
    ("Pneumonia 30-JAN-2025, amoxicillin completed.", "2025-07-03", "INFECTION", True),
])
def test_a_date_after_a_finding_is_history_when_long_before_the_note(extractor, text, date, concept, historical):
    assert one(extractor, text, concept, "CLINIC NOTE", date=date)["historical"] is historical, \
        f"historical of {concept} in {text!r} dated {date}"


@pytest.mark.parametrize("text, levels", [
    # a disc named by its two levels is not the fracture's level, before the disc word or after it
    ("Loss of height of L3 vertebral body with irregular superior endplate, L2/3 disc space narrowed.", ["L3"]),
    ("Wedge deformity of T12, with T11-12 intervertebral disc narrowing.", ["T12"]),
    ("Mild loss of height of L2 with disc bulge at L2-3.", ["L2"]),
    # a range that is not a disc still is
    ("Compression fractures T11-12 with disc bulges elsewhere.", ["T11", "T12"]),
])
def test_a_discs_levels_are_not_the_fractures(extractor, text, levels):
    assert one(extractor, text, "FRACTURE", "CT LUMBAR SPINE")["levels"] == levels


@pytest.mark.parametrize("text, negated", [
    # "No." for number negates nothing
    ("Patient No. 4411 - acute L1 compression fracture.", False),
    ("No. of levels: 2. No. 1: L1 compression fracture.", False),
    ("Fractures (No.): 2 - acute L1 compression fracture.", False),
    # "No." as an answer ends its sentence, and negates in it
    ("Trauma? No. Acute L1 compression fracture.", False),
    ("Prior vertebral fracture: No.", True),
    ("No compression fracture.", True),
])
def test_no_as_a_number_and_as_an_answer(extractor, text, negated):
    assert one(extractor, text, "FRACTURE", "CLINIC NOTE")["negated"] is negated


@pytest.mark.parametrize("text, historical", [
    ("Chronic back pain from an old L1 compression fracture (fall 2019), no change.", True),
    ("Known T12 compression fracture, L2 kyphoplasty 2019.", False),  # the kyphoplasty's date
    ("L1 compression fracture, kyphoplasty booked 04/03/2019.", False),
])
def test_a_date_two_words_after_a_fracture(extractor, text, historical):
    assert one(extractor, text, "FRACTURE", "CLINIC NOTE")["historical"] is historical


@pytest.mark.parametrize("text, concept, attrs", [
    # a rule's reach counts words: quotes and a compound's hyphens do not use it up
    ('FH: his late mother was "bent double" with spinal crush fractures.', "FRACTURE", dict(family=True)),
    ('Family: mother "shrank" and had a collapsed vertebra in her 80s.', "FRACTURE", dict(family=True)),
    ("Her mother had age-related osteoporotic vertebral fractures.", "FRACTURE", dict(family=True)),
    # brackets still count: an aside ends a reach as often as it carries one
    ("Her mother had osteoporosis (diagnosed late, after several hip operations); acute L1 compression fracture.",
     "FRACTURE", dict(family=False)),
])
def test_a_rules_reach_counts_words_not_quotes_or_hyphens(extractor, text, concept, attrs):
    assert_attrs(one(extractor, text, concept, "CLINIC NOTE"), attrs, text)


@pytest.mark.parametrize("text, concept, attrs", [
    ("No focal marrow lesion; nothing to suggest a lytic lesion.", "MALIGNANCY", dict(negated=True)),
    ("Nothing suspicious for metastasis.", "MALIGNANCY", dict(negated=True)),
    ("Consent discussed incl. cement leak, infection, bleeding.", "INFECTION", dict(hypothetical=True)),
    # what a treatment is for, and how patients are managed, in general
    ("Vertebral augmentation is used for painful, recent osteoporotic fractures with marrow oedema on MRI.",
     "OEDEMA", dict(hypothetical=True)),
    ("Young adults with fragility fractures are usually managed conservatively.", "FRACTURE",
     dict(hypothetical=True)),
    # this patient's
    ("Kyphoplasty is indicated for the acute L1 compression fracture.", "FRACTURE", dict(hypothetical=False)),
    ("Acute L1 compression fracture with marrow oedema, treated conservatively.", "OEDEMA",
     dict(hypothetical=False)),
])
def test_nothing_to_suggest_consents_and_statements_in_general(extractor, text, concept, attrs):
    assert_attrs(one(extractor, text, concept, "CLINIC NOTE"), attrs, text)


@pytest.mark.parametrize("text, concept, found", [
    # the variant named before the wedging, as after it
    ("Mild physiologic wedging of T11 and T12. Remaining heights maintained.", "FRACTURE", False),
    ("Developmental wedging of T7-T9.", "FRACTURE", False),
    ("New anterior wedging of T11 with marrow oedema; physiological kyphosis elsewhere.", "FRACTURE", True),
])
def test_wedging_called_a_variant_before_it(extractor, text, concept, found):
    assert has(extractor, text, concept, "XR THORACIC SPINE") is found


def test_call_with_a_symptom_is_advice(extractor):
    text = "Counseled on infection risk with biologic + steroids; call with fever."
    assert one(extractor, text, "INFECTION", "CLINIC NOTE")["hypothetical"] is True


def test_a_list_headed_fractures_is_not_a_fracture_without_a_level(extractor):
    text = "INR 1.1, Plt 240.\nFractures: acute L1 compression fracture for vertebroplasty; L3 burst fracture."
    fractures = find(extractor.mentions(text, "TRANSFER LETTER"), "FRACTURE")
    assert [mention["levels"] for mention in fractures] == [["L1"], ["L3"]]


@pytest.mark.parametrize("text, labs", [
    ("Pt: 76 y.o. F, retired librarian.", []),
    ("Pt 81 yo M with back pain.", []),
    ("PT 14.2 s, INR 1.1.", [("PT", 14.2), ("INR", 1.1)]),
])
def test_a_patients_age_is_not_a_prothrombin_time(extractor, text, labs):
    found = [(m["lab"], m["value"]) for m in find(extractor.mentions(text, "CLINIC NOTE"), "COAGULOPATHY")]
    assert found == labs


def test_a_consents_list_goes_on_past_a_risk_of_its_own(extractor):
    text = "Consent discussed incl. cement leak, adjacent-level fracture risk, infection, bleeding."
    assert one(extractor, text, "INFECTION", "CLINIC NOTE")["hypothetical"] is True


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # a checklist answered N after each item, no colon
    ("Pre-procedure checklist: coagulopathy N, active infection N, fever N.", "INFECTION", "active",
     dict(negated=True)),
    ("Pre-procedure checklist: coagulopathy N, active infection Y, fever N.", "INFECTION", "active",
     dict(negated=False)),
    ("Pre-procedure checklist: coagulopathy N, active infection Y, fever N.", "COAGULOPATHY", None,
     dict(negated=True)),
    # an infection last month is history; a fracture after a fall last month is this one
    ("She had a further prednisolone course from her GP last month for a chest infection.", "INFECTION", None,
     dict(historical=True)),
    ("L1 compression fracture after a fall last month.", "FRACTURE", None, dict(historical=False)),
])
def test_checklists_answered_n_and_infections_last_month(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "CLINIC NOTE", needle), attrs, text)


@pytest.mark.parametrize("text, levels", [
    # the list keyed by levels after a level-less fracture's sentence
    ("There are two acute compression fractures.\n- T12: superior endplate depression.\n- L1: 25% height loss.",
     ["T12", "L1"]),
    ("Compression fracture.\nL2-3: disc bulge.", []),  # a disc's item
    # a fusion written without a preposition, a DXA table's row
    ("PMHx: T6 burst fracture 2011 (fused T4-T8), neurogenic bladder.", ["T6"]),
    ("Region  BMD  T-score\nL1              excluded (vertebral fracture)\nL2-L4           0.742    -3.1", ["L1"]),
])
def test_levels_of_a_list_a_fusion_and_a_dxa_table(extractor, text, levels):
    assert one(extractor, text, "FRACTURE", "MRI SPINE")["levels"] == levels


@pytest.mark.parametrize("text, levels", [
    ("Imp: likely new osteoporotic crush fracture TLJ.", ["T12", "L1"]),
    ("Wedge fracture at the TL junction on XR.", ["T12", "L1"]),
    ("Acute compression fracture at the thoracolumbar junction.", ["T12", "L1"]),
])
def test_the_thoracolumbar_junction_and_its_shorthand(extractor, text, levels):
    assert one(extractor, text, "FRACTURE", "GP NOTE")["levels"] == levels


@pytest.mark.parametrize("text, found", [
    ("Likely L4 or L5 pars bone stress injury (stress reaction/stress fracture) until proven otherwise.", False),
    ("Right sacral stress fracture in a marathon runner.", True),
    ("Stress fracture of the sacrum on MRI.", True),
])
def test_a_stress_fracture_is_the_pars_unless_sacral(extractor, text, found):
    assert has(extractor, text, "FRACTURE", "SPORTS MEDICINE CLINIC") is found


@pytest.mark.parametrize("text, concept, needle, attrs", [
    ("Assessment: low-energy trauma in an ankylosed spine = unstable fracture until proven otherwise.",
     "FRACTURE", None, dict(uncertain=True)),
    ("In an ankylosed spine even minor trauma can cause unstable vertebral fractures.", "FRACTURE", None,
     dict(hypothetical=True)),
    ("Acute T11 vertebral fracture after a fall.", "FRACTURE", None, dict(hypothetical=False, uncertain=False)),
    # a box after a dot leader answers its line
    ("Plt 152 ........ [Y]\nFever or active infection ............ [N]   T 36.6", "INFECTION", "active",
     dict(negated=True)),
    ("Fever or active infection ............ [Y]   T 38.6", "INFECTION", "active", dict(negated=False)),
])
def test_working_assumptions_warnings_and_boxes_after_leaders(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "RHEUMATOLOGY", needle), attrs, text)


@pytest.mark.parametrize("text, concept, found", [
    # a spinous process's tip, before or after the fracture
    ("Minimally displaced fracture tip of C7 spinous process.", "FRACTURE", False),
    ("C7 spinous process tip fracture. Otherwise no cervical spine injury.", "FRACTURE", False),
    # the CT's chest, abdomen and pelvis in a list; pneumonia written CAP
    ("CT (head, C-spine, CAP + spine reformats, R wrist) - hot report.", "INFECTION", False),
    ("Admitted with CAP and AKI.", "INFECTION", True),
    # a Parkinson's patient's retropulsion; a fragment's beside the disease
    ("Known retropulsion with his Parkinson's.", "RETROPULSION", False),
    ('"He just keeps going backwards once he starts" - known retropulsion.', "RETROPULSION", False),
    ("L1 burst fracture with retropulsion, patient has Parkinson's disease.", "RETROPULSION", True),
])
def test_trauma_series_look_alikes(extractor, text, concept, found):
    assert has(extractor, text, concept, "CT TRAUMA") is found


def test_a_list_mark_on_a_backward_rule_is_refused(tmp_path):
    rule = {"literal": "risks", "category": "HYPOTHETICAL", "direction": "BACKWARD", "metadata": {"list": True}}
    assert any(problem.startswith("R010") for problem in check_rules(_folder(tmp_path, "context", [rule])))


@pytest.mark.parametrize("text, concept, attrs", [
    ("Family h/o: Elder sister k/c/o osteoporosis, had spine fracture after minor fall.", "FRACTURE",
     dict(family=True)),
    ("X-ray DL spine: Wedge compression # D12, approx 30% anterior ht loss.", "FRACTURE", dict(levels=["T12"])),
    ("Osteoporotic fracture D11 with marrow oedema.", "FRACTURE", dict(levels=["T11"])),
    ("Drain removed D2. Acute L1 compression fracture.", "FRACTURE", dict(levels=["L1"])),
])
def test_south_asian_case_sheets(extractor, text, concept, attrs):
    assert_attrs(one(extractor, text, concept, "OPD CASE SHEET"), attrs, text)


@pytest.mark.parametrize("text, lab, value", [
    ("Platelets in citrate: Plt 171 - thrombocytopenia excluded (EDTA clumping).", "platelets", 171.0),
    ("No evidence of DIC (fibrinogen normal, INR 1.3).", "INR", 1.3),
    ("IR will not proceed with a platelet count of 40,000.", "platelets", 40.0),
])
def test_a_measured_value_is_never_denied(extractor, text, lab, value):
    found = [m for m in find(extractor.mentions(text, "WARD ROUND"), "COAGULOPATHY") if m["lab"] == lab]
    assert found and found[0]["value"] == value and found[0]["negated"] is False


@pytest.mark.parametrize("text, concept, levels", [
    ("Level confirmed with fluoroscopy, counting up from the sacrum and down from C2, correlated with the T8 "
     "collapse on the MRI localiser.", "FRACTURE", ["T8"]),
    ("T1 marrow signal in T7 is largely preserved, which may favour an older fracture.", "FRACTURE", ["T7"]),
    ("POD5 T11-L3 PSF/L1 decompression for L1 burst fracture.", "FRACTURE", ["L1"]),
])
def test_levels_counted_from_sequences_and_fusions(extractor, text, concept, levels):
    assert one(extractor, text, concept, "OPERATION NOTE")["levels"] == levels


def test_wedging_within_the_range_of_normal_is_not_a_fracture(extractor):
    text = "Mild anterior wedging of T5 and T6 (less than 10%) is within the range of normal thoracic wedging."
    assert not has(extractor, text, "FRACTURE", "XR THORACIC SPINE")


@pytest.mark.parametrize("text, concept, found, attrs", [
    ("Return precautions given verbally and in writing: new weakness or numbness, bowel/bladder changes, fever.",
     "INFECTION", True, dict(hypothetical=True)),
    ("  3) TAMSULOSIN HCL 0.4MG CAP TAKE ONE CAPSULE BY MOUTH AT BEDTIME  ACTIVE", "INFECTION", False, {}),
    ("Admitted with CAP, on ceftriaxone.", "INFECTION", True, dict(hypothetical=False)),
    ("3. PD with falls/retropulsion and orthostasis: continue midodrine.", "RETROPULSION", False, {}),
])
def test_va_templates(extractor, text, concept, found, attrs):
    mentions = find(extractor.mentions(text, "PRIMARY CARE NOTE"), concept)
    assert bool(mentions) is found
    if found:
        assert_attrs(mentions[0], attrs, text)


@pytest.mark.parametrize("text, date, concept, historical", [
    ("CXR PA/lat 03/2023 (aspiration PNA admission) shows the same T7 wedge compression.", "2025-08-12",
     "INFECTION", True),
    ("She had an L1 kyphoplasty in March 2019 for an osteoporotic fracture.", "2025-08-12", "FRACTURE", True),
    ("MRI 08/02/2025: acute L1 compression fracture.", "2025-08-12", "FRACTURE", False),
    ("MRI 08/02/2019: acute L1 compression fracture.", None, "FRACTURE", False),  # no note date: not read
])
def test_a_date_just_before_a_finding(extractor, text, date, concept, historical):
    assert one(extractor, text, concept, "CLINIC NOTE", date=date)["historical"] is historical, text


@pytest.mark.parametrize("text, hypothetical", [
    ("1. MRI T and L spine stat - PLC, conus compression, epidural hematoma.", True),
    ("CT L-spine urgently to assess for epidural abscess.", True),
    ("MRI today: acute L1 burst fracture with conus compression.", False),
])
def test_an_imaging_order_lists_what_it_is_to_show(extractor, text, hypothetical):
    found = find(extractor.mentions(text, "SPINE CONSULT"), "EPIDURAL_DISEASE") or \
        find(extractor.mentions(text, "SPINE CONSULT"), "INFECTION")
    assert found and found[0]["hypothetical"] is hypothetical, text


@pytest.mark.parametrize("date", ["2024-03-12", pd.Timestamp("2024-03-12"), datetime.date(2024, 3, 12),
                                  datetime.datetime(2024, 3, 12, 9, 30)])
def test_the_notes_date_in_any_form_the_readers_give(extractor, date):
    """A 2021 fracture is history in a note of March 2024, however the date is given; in one of
    December 2021 it is not."""
    text = "Seen today. L1 compression fracture 2021."
    assert one(extractor, text, "FRACTURE", "CLINIC NOTE", date=date)["historical"] is True
    assert one(extractor, text, "FRACTURE", "CLINIC NOTE", date="2021-12-20")["historical"] is False


@pytest.mark.parametrize("date", [None, pd.NaT, "not a date"])
def test_no_note_date_reads_a_date_after_as_written(extractor, date):
    text = "Seen today. L1 compression fracture 2021."
    assert one(extractor, text, "FRACTURE", "CLINIC NOTE", date=date)["historical"] is True


def test_a_dates_separators_do_not_use_up_a_reach(extractor):
    text = "4. Oropharyngeal dysphagia; recent aspiration pneumonia (admission 26/06-01/07/2025, treated)"
    assert one(extractor, text, "INFECTION", "CLINIC LETTER")["corrected"] == "treated"


@pytest.mark.parametrize("text, concept, historical", [
    ("AF - warfarin changed to apixaban 2.5 mg bd after a supratherapeutic INR.", "COAGULOPATHY", True),
    ("Had a tunneled HD catheter removed in April after a line infection (MSSA, treated).", "INFECTION", True),
    ("Readmitted after a new L1 compression fracture.", "FRACTURE", False),
])
def test_what_something_followed_is_past(extractor, text, concept, historical):
    assert one(extractor, text, concept, "CLINIC LETTER")["historical"] is historical


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # a hedge of its own: "probable", "suggestive of"
    ("IMPRESSION: Probable right lower lobe pneumonia.", "INFECTION", None, dict(uncertain=True)),
    ("MRI shows findings suggestive of osteomyelitis at L3.", "INFECTION", None, dict(uncertain=True)),
    ("Probable L1 compression fracture on the lateral view.", "FRACTURE", None, dict(uncertain=True)),
    ("T2 hyperintensity probably represents discitis.", "INFECTION", None, dict(uncertain=True)),
    # ... not a fracture whose cause is what is probable, nor a negation's, nor a drug
    ("A/P: 1. Probable osteoporotic T12 compression fracture.", "FRACTURE", None, dict(uncertain=False)),
    ("Findings suggestive of an acute osteoporotic compression fracture at L2.", "FRACTURE", None,
     dict(uncertain=False, acuity="acute")),
    ("No findings suggestive of infection.", "INFECTION", None, dict(negated=True, uncertain=False)),
    ("Appearances not suggestive of discitis.", "INFECTION", None, dict(negated=True, uncertain=False)),
    ("Probably not an infection.", "INFECTION", None, dict(negated=True, uncertain=False)),
    ("DIC with probable marrow infiltration, on therapeutic LMWH.", "ANTICOAGULANT", None, dict(uncertain=False)),
    # "were negative for": the forward "negative for"; a test of it that came back negative
    ("Cultures were sent; the results were negative for infection.", "INFECTION", None, dict(negated=True)),
    ("Blood cultures were negative. Pneumonia on CXR.", "INFECTION", None, dict(negated=False)),
    ("Not in shock; sepsis screen negative (lactate 1.6).", "INFECTION", "sepsis", dict(negated=True)),
    ("Myeloma screen: negative.", "MALIGNANCY", None, dict(negated=True, hypothetical=False)),
    ("Myeloma screen sent.", "MALIGNANCY", None, dict(hypothetical=True)),
    # what may happen: a condition, a consent's list on its line and below it
    ("Should the infection involve the instrumentation, it will need removal.", "INFECTION", None,
     dict(hypothetical=True)),
    ("Risks such as bleeding, infection and nerve injury were discussed.", "INFECTION", None,
     dict(hypothetical=True)),
    ("Potential complications include but are not limited to,\n1. Infection.\n2. Bleeding.", "INFECTION", None,
     dict(hypothetical=True)),
    ("Risks discussed:\n- bleeding\n- infection\n- cement leak", "INFECTION", None, dict(hypothetical=True)),
    ("Call the ward if you develop:\n- fever\n- new weakness", "INFECTION", None, dict(hypothetical=True)),
    # ... not beyond the list, nor a list of what did happen, nor the patient's risk factors
    ("Risks discussed:\n1. Infection.\n2. Bleeding.\nShe has had pneumonia since Monday.", "INFECTION", "pneumonia",
     dict(hypothetical=False)),
    ("Potential complications include:\n1. Infection.\n\nShe has a UTI today.", "INFECTION", "UTI",
     dict(hypothetical=False)),
    ("Complications:\n- wound infection, treated with flucloxacillin", "INFECTION", None,
     dict(hypothetical=False)),
    ("Risk factors:\n- prior vertebral fracture\n- long-term steroids", "FRACTURE", None, dict(hypothetical=False)),
    # the osteomyelitis is what a septic workup found
    ("Found on bone scan and septic workup to have osteomyelitis of the lumbar spine.", "INFECTION",
     "osteomyelitis", dict(hypothetical=False)),
    # what a symptom could mean
    ("She was worried the pain could mean a new fracture of the spine.", "FRACTURE", None, dict(uncertain=True)),
    ("A fever may signal a line infection.", "INFECTION", "infection", dict(uncertain=True)),
    ("Loss of height of T12 means a fracture.", "FRACTURE", None, dict(uncertain=False)),
    # what a finding would mean; not the finding that "which would favor" follows
    ("Bone scan to age L2. Increased uptake at\n  L2 would favor a recent fracture; if so, refer to IR.", "FRACTURE",
     "fracture", dict(hypothetical=True)),
    ("Bone scan to age L2. Increased uptake at L2 would favor a recent fracture.", "OEDEMA", None,
     dict(hypothetical=True)),
    ("Increased uptake at Th12 would support a recent fracture.", "FRACTURE", "fracture", dict(hypothetical=True)),
    ("Marrow oedema at L1, which would favor an acute fracture.", "OEDEMA", None, dict(hypothetical=False)),
    # a risk of what has not happened
    ("Discussed that there is a risk of progressive vertebral collapse and kyphosis.", "FRACTURE", None,
     dict(hypothetical=True)),
])
def test_hedges_tests_and_lists_of_what_may_happen(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "PROCEDURE NOTE", needle), attrs, text)


@pytest.mark.parametrize("text", [
    "Intravenous antibiotics were given for prophylaxis.",
    "The patient was given IV antibiotics prior to our incision.",
    "Preoperative IV antibiotics were administered.",
])
def test_antibiotics_to_prevent_an_infection_are_not_one(extractor, text):
    mentions = find(extractor.mentions(text, "OPERATIVE NOTE"), "INFECTION")
    assert not [m for m in mentions if not (m["hypothetical"] or m["negated"])], text


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # a line break of a hard wrap uses up no reach
    ("Finished a 5-day course of\nantibiotics for a bladder infection on 02/11, symptoms gone.", "INFECTION", None,
     dict(corrected="treated")),
    # a forward cue inside brackets ends with them, unless they qualify the word after them
    ("MRI 15/09 (to age / exclude other levels): T12 compression fracture with marrow oedema.", "FRACTURE", None,
     dict(uncertain=False)),
    ("L1 compression fracture (no retropulsion) and epidural abscess.", "EPIDURAL_DISEASE", None,
     dict(negated=False)),
    ("A benign (osteoporotic) fracture of L2.", "FRACTURE", None, dict(aetiology="osteoporotic")),
    ("UTI (treated).", "INFECTION", None, dict(corrected="treated")),
    # what something followed, a month named; a consent's list in brackets or after a comma
    ("Deconditioned after Feb chest infection and 3 weeks of reduced activity.", "INFECTION", None,
     dict(historical=True)),
    ("Consent form 4 signed (cement leak, infection, bleeding, nerve injury)  Y", "INFECTION", None,
     dict(hypothetical=True)),
    ("Consent form 4 (lacks capacity)? ..... N\nActive infection / pyrexia ..... Y", "INFECTION", None,
     dict(hypothetical=False)),
    ("She understands the risks, including cement\nleakage and infection.", "INFECTION", None,
     dict(hypothetical=True)),
    # ICD-10 M80's title with "w/"
    ("ICD-10 M80.08XA Age-related osteoporosis w/ current pathological fracture, vertebra(e)", "FRACTURE", None,
     dict(aetiology="osteoporotic")),
    # a typist's two spaces after a full stop, and the sentence wrapped after its first word
    ("Acute L1 compression fracture with approximately 25% anterior height loss.  No\nretropulsion.",
     "RETROPULSION", None, dict(negated=True)),
    ("Expansile lytic lesion of L3, better evaluated by MRI.  No\npathologic fracture at L3.", "FRACTURE", None,
     dict(negated=True)),
    ("Expansile lytic lesion of L3, better evaluated by MRI.   No\npathologic fracture at L3.", "FRACTURE", None,
     dict(negated=True)),
    # ... a table's row still ends at its short value
    ("Posterior wall intact    No\nRetropulsion of T12 fragment 3 mm", "RETROPULSION", None, dict(negated=False)),
])
def test_wraps_brackets_and_lists(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "CLINIC LETTER", needle), attrs, text)


@pytest.mark.parametrize("text, date, concept, historical", [
    # a chronology's entry: the date that starts its line dates it
    ("19/11/2022 CT: acute L1 wedge compression fracture, no retropulsion.", "2025-03-14", "FRACTURE", True),
    ("03/12/2022 GP: infected laceration of the left forearm.", "2025-03-14", "INFECTION", True),
    ("01/03/2025 GP: urinary tract infection, trimethoprim 3 days.", "2025-03-14", "INFECTION", False),
    # ... not a hard wrap's date, nor without the note's date
    ("New wedge fracture of T11. Not present on CT of\n03/11/2024, in keeping with an acute fracture.", "2025-08-02",
     "FRACTURE", False),
    ("19/11/2022 CT: acute L1 wedge compression fracture.", None, "FRACTURE", False),
    # a year after a line's wrap
    ("L breast cancer 2009; L1 compression fracture\n  2019 (conservative).", "2025-03-01", "FRACTURE", True),
])
def test_a_chronologys_dated_lines(extractor, text, date, concept, historical):
    found = find(extractor.mentions(text, "MEDICOLEGAL REPORT", date), concept)
    assert found and all(m["historical"] is historical for m in found), text


@pytest.mark.parametrize("text, levels", [
    # a fracture with a level of its own takes no level set apart from it and its list
    ("IgG myeloma with bone disease (treated L3 pathological fracture, lytic T6/L1/ilium), anaemia.", [["L3"]]),
    ("PMH: L4-5 radiculopathy - epidural steroid injection 2023 (good relief), L1 burst fracture 2018.", [["L1"]]),
    ("PMH: Parkinson's 9 yrs, AF, old L3 # (2023), L4/5 stenosis.", [["L3"]]),
    ("Compression fractures of T12, L1 and L2.", [["T12", "L1", "L2"]]),
    ("Acute compression fractures T12 (40%) and L1 (25%), minor L3 endplate change.", [["T12", "L1"]]),
    ("Compression fracture of T12 extending to L1.", [["T12", "L1"]]),
    # ... nor a level with a finding of its own
    ("Myeloma c/b pathologic T10 compression fracture and L3 lesion with\nepidural extension.", [["T10"]]),
    ("A possible L3 endplate fracture and an indeterminate L4 lesion.", [["L3"]]),
    ("Compression fractures of T10 and L3 with mild retropulsion.", [["T10", "L3"]]),
    # an ICD-10 title's pair of vertebrae codes one of them: the note's own
    ("Acute T12 compression fracture.\nDx: S22.080A Wedge compression fracture of T11-T12 vertebra", [["T12"], ["T12"]]),
    ("Wedge compression fractures of T11 and T12 vertebrae.", [["T11", "T12"]]),
    # a table's rows are rows
    ("  Site                  SUVmax   CT\n  L1 vertebral body      7.8     lytic lesion, pathological compression fracture\n"
     "  T6 vertebral body      5.1     lytic lesion, no collapse", [["L1"]]),
])
def test_levels_written_apart_from_a_fracture_with_its_own(extractor, text, levels):
    assert [m["levels"] for m in find(extractor.mentions(text, "CLINIC LETTER"), "FRACTURE")] == levels, text


@pytest.mark.parametrize("text", [
    "Sit to stand: assist x1, posterior lean - marked retropulsion on\n   standing, required assist.",
    "Marked retropulsion on\n   standing.",
])
def test_gait_retropulsion_across_a_wrap(extractor, text):
    assert find(extractor.mentions(text, "PHYSIOTHERAPY NOTE"), "RETROPULSION") == [], text


@pytest.mark.parametrize("text, concept, negated", [
    # a label's "none" on a line run together answers the label, not the finding before it
    ("INDICATION: back pain, r/o metastatic breast cancer COMPARISON: None FINDINGS: clear", "MALIGNANCY", False),
    ("Meds: apixaban 5 mg bd Allergies: none", "ANTICOAGULANT", False),
    ("Meds: apixaban 5 mg bd Allergies - none", "ANTICOAGULANT", False),
    ("Hx of osteomyelitis of the spine. Priors: none available.", "INFECTION", False),
    # ... a finding's own label still is
    ("Complications: none. Discitis: none.", "INFECTION", True),
    ("Anticoagulants: none", "ANTICOAGULANT", True),
    ("Signs of infection - none", "INFECTION", True),
])
def test_a_labels_none_answers_the_label(extractor, text, concept, negated):
    found = find(extractor.mentions(text, "RADIOLOGY REPORT"), concept)
    assert found and all(m["negated"] is negated for m in found), text


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # a discharge instruction's "when to call" list is what may happen
    ("Discharge Instructions:\nMedications\n- Continue enoxaparin injections at rehab.\n\n"
     "When to Call Your Doctor at ___ for:\n- Fever greater than 101.5 degrees Fahrenheit.", "INFECTION", None,
     dict(hypothetical=True)),
    ("When to seek help:\n- fever or redness at the wound", "INFECTION", None, dict(hypothetical=True)),
    ("Discharge medications:\n- Fever 38.4 on day 2, now settled.", "INFECTION", None, dict(hypothetical=False)),
    # Bilsky 0: bone disease without epidural extension
    ("ESCC: Bilsky 0\nECOG: 2", "EPIDURAL_DISEASE", None, dict(negated=True)),
    ("ESCC: Bilsky 2 at T10.", "EPIDURAL_DISEASE", None, dict(negated=False)),
    # a referrer's concern
    ("PCP was concerned for occult malignancy and arranged admission.", "MALIGNANCY", None, dict(uncertain=True)),
])
def test_instructions_grades_and_concerns(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "DISCHARGE SUMMARY", needle), attrs, text)


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # an infection called recent is an episode just past, unless it is just found or treated still
    ("79 y.o. female with pAF on apixaban, recent CAP, admitted after ground-level fall.", "INFECTION", None,
     dict(historical=True)),
    ("Recent admission 1/9-1/12 here for RLL CAP, completed cefpodoxime 1/14.", "INFECTION", None,
     dict(historical=True)),
    ("BPH, recently treated urosepsis.", "INFECTION", None, dict(historical=True)),
    ("She was seen in clinic and was recently\n   admitted with a urinary tract infection, now back to her "
     "baseline.", "INFECTION", None, dict(historical=True)),
    ("Recently diagnosed L2 discitis.", "INFECTION", None, dict(historical=False)),
    ("Recently\ndiagnosed L2 discitis.", "INFECTION", None, dict(historical=False)),
    ("Recent pneumonia, still on amoxicillin.", "INFECTION", None, dict(historical=False)),
    ("No fever or recent infections.", "INFECTION", "infections", dict(negated=True, historical=False)),
    # Epic's "(HCC)" after a problem is a risk-adjustment category, not a hepatocellular carcinoma
    ("Problem list:\n• Paroxysmal atrial fibrillation (HCC)    01/09/2025\n• Cirrhosis with HCC", "MALIGNANCY", None,
     dict(negated=False)),
])
def test_recent_episodes_and_problem_list_categories(extractor, text, concept, needle, attrs):
    found = one(extractor, text, concept, "HOSPITALIST PROGRESS NOTE", needle)
    assert_attrs(found, attrs, text)
    if concept == "MALIGNANCY":
        assert [text[m["start"]:m["end"]] for m in find(extractor.mentions(text, "PROGRESS NOTE"), concept)] \
            == ["HCC"], text


@pytest.mark.parametrize("text, concept, attrs", [
    # "s/p" names one past event with its level, date and reason, not the rest of a run-on line
    ("72M, CAD s/p PCI with two stents, HTN, CKD, admitted after a fall down three steps with an "
     "L2 compression fracture.", "FRACTURE", dict(historical=False)),
    ("Status post mitral valve replacement, atrial fibrillation, diabetes, hypothyroidism and "
     "heart failure, maintained on warfarin.", "ANTICOAGULANT", dict(historical=False)),
    ("Osteoporosis s/p L1 kyphoplasty 2022 for a painful osteoporotic compression fracture.", "FRACTURE",
     dict(historical=True)),
    ("S/p T11-L1 laminectomy 2019 for a spinal epidural abscess.", "INFECTION", dict(historical=True)),
])
def test_status_post_reach(extractor, text, concept, attrs):
    assert_attrs(one(extractor, text, concept, "PROGRESS NOTE"), attrs, text)


@pytest.mark.parametrize("text, concept, negated, levels", [
    # a denied new or other finding, or a relative's, is not the one just described
    ("FINDINGS: Mild wedge compression deformities of T6, T7 and T8, unchanged from 2022. "
     "No new compression deformity.", "FRACTURE", True, []),
    ("IMPRESSION: 1. Acute L1 burst fracture.\n2. No other vertebral fracture.", "FRACTURE", True, []),
    ("Acute T12 compression fracture. No further loss of height.", "FRACTURE", True, []),
    ("Known L1 compression fracture. Her sister has several spine fractures.", "FRACTURE", False, []),
    # guards: what is denied or planned at the level just described is that level's
    ("Acute L1 burst fracture. No retropulsion.", "RETROPULSION", True, ["L1"]),
    ("Acute L2 compression fracture. Kyphoplasty is planned once the MRI is done.", "PRIOR_AUGMENTATION", False,
     ["L2"]),
])
def test_another_finding_takes_no_level(extractor, text, concept, negated, levels):
    found = [m for m in find(extractor.mentions(text, "MRI THORACOLUMBAR SPINE"), concept)
             if m["negated"] is negated and (concept != "FRACTURE" or m["start"] > text.index("."))]
    assert found, text
    assert found[-1]["levels"] == levels, text


@pytest.mark.parametrize("text, concept, family", [
    # a relative who brings, finds, asks or is told is not the one who has it
    ("81-year-old woman brought in by her daughter with 2 days of fever and rigors.", "INFECTION", False),
    ("Found on the floor by his wife this morning, confused, febrile to 39.1.", "INFECTION", False),
    ("MRI reviewed with pt and son: old L1 fracture, nothing new.", "FRACTURE", False),
    ("Her daughter would like to explore vertebroplasty if the pain does not settle.", "PRIOR_AUGMENTATION", False),
    ("Daughter asks whether the warfarin will have to stop before the procedure.", "ANTICOAGULANT", False),
    ("Brought in by her aunt with two days of fever and a productive cough.", "INFECTION", False),
    ("Uncle asks whether the apixaban has to stop before the kyphoplasty.", "ANTICOAGULANT", False),
    ("Cousin at bedside, patient febrile overnight, cultures sent.", "INFECTION", False),
    ("Retropulsed bone is a relative contraindication to vertebroplasty.", "PRIOR_AUGMENTATION", False),
    ("No personal or family history of a bleeding disorder.", "COAGULOPATHY", False),
    # a family history heading ends at the examination's
    ("FH: brother has haemophilia A.\nO/E: Apyrexial, NEWS 1. Tender at L1.", "INFECTION", False),
    # guards: the relative's own
    ("Her daughter had a vertebroplasty last year.", "PRIOR_AUGMENTATION", True),
    ("Wife asked whether her own Eliquis needs to be stopped too.", "ANTICOAGULANT", True),
    ("FH: brother has haemophilia A.\nO/E: Apyrexial, NEWS 1.", "COAGULOPATHY", True),
    ("Mother had osteoporotic vertebral fractures in her seventies.", "FRACTURE", True),
    ("Brother has hemophilia - her own coags are normal.", "COAGULOPATHY", True),
    ("Her aunt had pneumonia last winter.", "INFECTION", True),
    # the manifest's word lists: in-laws, step-relatives, a partner, grandchildren
    ("Her mother-in-law, who had a vertebroplasty in 2019, recommended it.", "PRIOR_AUGMENTATION", True),
    ("His stepfather had osteoporotic vertebral fractures.", "FRACTURE", True),
    ("Her partner had pneumonia last month.", "INFECTION", True),
    ("Her grandson (aged 12) had pneumonia in March.", "INFECTION", True),
    ("Brought in by her stepdaughter with two days of fever and rigors.", "INFECTION", False),
    ("Partner asks whether the apixaban has to stop before the kyphoplasty.", "ANTICOAGULANT", False),
])
def test_relatives_who_are_not_the_experiencer(extractor, text, concept, family):
    assert_attrs(one(extractor, text, concept, "CLINIC NOTE"), dict(family=family), text)


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # a follow-up of an infection, written before it
    ("Reason for visit: f/u pneumonia, DXA results, back pain.", "INFECTION", None, dict(historical=True)),
    # what a prophylaxis prevents
    ("4. Infection prophylaxis: continue aciclovir and co-trimoxazole.", "INFECTION", None, dict(hypothetical=True)),
    ("UTI prophylaxis with nitrofurantoin at night.", "INFECTION", None, dict(hypothetical=True)),
    ("Day 3 of IV ceftriaxone for pyelonephritis.", "INFECTION", None, dict(hypothetical=False)),
    # what a finding was taken for
    ("Spondylodiscitis masquerading as an osteoporotic compression fracture.", "FRACTURE", None,
     dict(negated=True)),
    ("A Schmorl's node can mimic an endplate fracture on radiographs.", "FRACTURE", None, dict(negated=True)),
    ("The wedge shape was first misread as a compression deformity of L1.", "FRACTURE", None, dict(negated=True)),
    ("Metastasis mimicking an osteoporotic fracture at T9.", "MALIGNANCY", None, dict(negated=False)),
    # a corrected report quoting its error
    ("CORRECTED REPORT: the original dictation erroneously stated retropulsion; the radiologist confirms "
     "none.", "RETROPULSION", None, dict(negated=True)),
    ("Addendum: a voice-recognition error in the L1 paragraph read \"there is retropulsion of the "
     "posterosuperior corner\".", "RETROPULSION", None, dict(negated=True)),
    ("ADDENDUM: on review there is 3 mm retropulsion of the posterosuperior corner of L1.", "RETROPULSION", None,
     dict(negated=False)),
    # the alternative ranked lower
    ("Subtle L1 superior endplate concavity, favored to represent a Schmorl's node over a minimal "
     "compression fracture.", "FRACTURE", None, dict(uncertain=True)),
    # what a case report or a grand round teaches is about any patient
    ("Outcome: the L1 fracture healed.\n\nLearning points\n- A compression deformity on a radiograph "
     "in a febrile patient is infection until proved otherwise.", "FRACTURE", "compression deformity",
     dict(hypothetical=True)),
    ("Teaching points.\n1. Thoracic fracture pain is local and worse with loading.", "FRACTURE", None,
     dict(hypothetical=True)),
    ("Outcome: the L1 fracture healed.\n\nLearning points\n- Drink more milk.", "FRACTURE", None,
     dict(hypothetical=False)),
])
def test_followups_prophylaxis_mimics_and_teaching(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "CLINICAL NOTE", needle), attrs, text)


@pytest.mark.parametrize("text, concept, needle, levels, aetiology", [
    # a collapse named by its cause, and a dorsal level as a line's key
    ("D9: new pathological collapse with approximately 50% loss of height.", "FRACTURE", "collapse", ["T9"],
     "malignant"),
    ("MSCC at T10: malignant collapse with epidural disease.", "FRACTURE", None, ["T10"], "malignant"),
    ("Osteoporotic collapse of D12, 40% height loss.", "FRACTURE", "collapse", ["T12"], "osteoporotic"),
    ("Pathological collapse at T9 with retropulsion.", "FRACTURE", None, ["T9"], "malignant"),
    ("D8 and D10: metastatic infiltration without collapse.", "MALIGNANCY", None, ["T8", "T10"], ""),
    # the regions an examination covers are not the fracture's
    ("Compression deformities of T7 and T8. MRI of the thoracic and lumbar spine shows that the fractures "
     "are chronic.", "FRACTURE", "fractures", ["T7", "T8"], ""),
    # a fracture word the sentence before puts at vertebrae
    ("The radiographs had reported the T7 and T8 deformities as age-indeterminate. MRI showed chronic "
     "fractures with normal marrow signal.", "FRACTURE", "fractures", ["T7", "T8"], ""),
])
def test_collapses_dorsal_keys_and_referred_levels(extractor, text, concept, needle, levels, aetiology):
    found = one(extractor, text, concept, "CASE SUMMARY", needle)  # not a spine report's title
    assert_attrs(found, dict(levels=levels), text)
    if concept == "FRACTURE":
        assert_attrs(found, dict(aetiology=aetiology), text)


@pytest.mark.parametrize("text, word", [
    ("Right lower lobe collapse at T9 level.", "collapse"),
    ("Osteonecrosis with pathological collapse of the femoral head.", "collapse"),
    ("The radiographs had reported the T7 and T8 deformities as age-indeterminate.\n\nMRI showed chronic "
     "fractures with normal marrow signal.", "fractures"),  # a paragraph apart
])
def test_not_a_vertebral_collapse(extractor, text, word):
    spans = [text[m["start"]:m["end"]] for m in find(extractor.mentions(text, "CLINICAL NOTE"), "FRACTURE")]
    assert not [span for span in spans if word in span], text


def test_a_day_after_an_operation_is_not_a_dorsal_level():
    from pipeline.nlp.levels import find_level_groups
    for text in ("D2: mobilising, afebrile, wound clean. Back pain 4/10.",
                 "D1: epidural out, mild ankle oedema, compression stockings on."):
        assert find_level_groups(text) == [], text
    assert find_level_groups("D9: new pathological collapse.")[0].levels == ("T9",)


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # a possibility, a diagnosis weighed
    ("She is worried her spine will crumble and that she may already have a fracture.", "FRACTURE", None,
     dict(uncertain=True)),
    ("He may have had a UTI last month, treated by his GP.", "INFECTION", None, dict(uncertain=True)),
    ("Spinal epidural abscess considered given bacteremia -- low suspicion, mechanical pain.",
     "EPIDURAL_DISEASE", None, dict(uncertain=True)),
    # guards: what 'may have' and 'considered' do not reach
    ("Somatic complaints may have an organic basis in an osteoporotic lady.", "OSTEOPOROSIS", None,
     dict(uncertain=False)),
    ("The T12 compression fracture is considered chronic.", "FRACTURE", None, dict(uncertain=False)),
    ("Vertebroplasty considered and offered to the patient.", "PRIOR_AUGMENTATION", None, dict(uncertain=False)),
    # age: 'as before' is unchanged; 'new compared with' is new
    ("T9 inferior endplate fracture as before. No new collapse elsewhere.", "FRACTURE", "endplate fracture",
     dict(acuity="chronic")),
    ("T6: lytic lesion with a pathological fracture, approx 40% loss of height, new compared with the CT of "
     "14/03/2024.", "FRACTURE", "40% loss of height", dict(acuity="acute")),
    # an age word before the next fracture is that one's
    ("CT: chronic T7, T9 compression fx, no acute fx.", "FRACTURE", "compression fx", dict(acuity="chronic")),
    ("L1 burst fracture with acute-appearing marrow oedema.", "FRACTURE", None, dict(acuity="acute")),
    # ESCC grade 0: no epidural extension
    ("Painful solitary T12 metastasis. SINS 10, ESCC 0, neurologically intact.", "EPIDURAL_DISEASE", None,
     dict(negated=True)),
    ("MSCC at T8, ESCC 3, incomplete cord syndrome.", "EPIDURAL_DISEASE", "ESCC", dict(negated=False)),
    # an I-PASS patient summary is not a plan
    ("I: WATCHER\nP: 63M fall from roof, acute L1 burst # w/ retropulsion, neuro intact.", "FRACTURE", None,
     dict(hypothetical=False, levels=["L1"])),
    ("A: Back pain after a fall.\nP: MRI to assess for an L1 fracture.", "FRACTURE", None, dict(hypothetical=True)),
    # a past history ends with its paragraph
    ("PMH: AF, DM2, CABG 2019.\n\nAnticoagulation: warfarin held since 3/4.\nToday PT 15.8 / INR 1.3.",
     "COAGULOPATHY", "INR 1.3", dict(historical=False)),
    ("PMH: T8 compression fracture 2019, hypertension.", "FRACTURE", None, dict(historical=True)),
    # immune and heparin-induced thrombocytopenia by their abbreviations
    ("PMH: ITP (dx 2022) on prednisolone taper.", "COAGULOPATHY", "ITP", dict(**AFFIRMED, corrected="")),
    ("?HIT - 4Ts score 6, PF4 antibody sent.", "COAGULOPATHY", "HIT", dict(uncertain=True)),
    ("Confirmed HITT with a left leg DVT; heparin stopped.", "COAGULOPATHY", "HITT", dict(negated=False)),
    ("No evidence of TTP (no schistocytes, normal LDH).", "COAGULOPATHY", "TTP", dict(negated=True)),
    ("A/P: ITP in sustained remission off treatment. CBC every 3 months.", "COAGULOPATHY", "ITP",
     dict(corrected="resolved")),
    ("2. ITP - responding to treatment per hematology.", "COAGULOPATHY", "ITP", dict(corrected="treated")),
    # thresholds waited for are not results
    ("INR 1.4 today; UFH to continue until INR 2.5 or above.", "COAGULOPATHY", "INR 2.5",
     dict(hypothetical=True)),
    ("Needs INR 1.5 or lower on the day of the procedure.", "COAGULOPATHY", None, dict(hypothetical=True)),
    ("INR 1.4 today; UFH to continue until INR 2.5 or above.", "COAGULOPATHY", "INR 1.4",
     dict(hypothetical=False)),
])
def test_wave_23_hedges_ages_headings_and_coagulopathy(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "CLINIC NOTE", needle), attrs, text)


@pytest.mark.parametrize("text", [
    "Rx: 28 Gy in 4 fractions (7 Gy/#), daily, to T4.",
    "If not for surgery: RT 20 Gy in 5# to T7-9, CT sim tomorrow, first # tomorrow.",
    "RADIOTHERAPY ON-TREATMENT REVIEW - # 5/5, T7-9 20 Gy/5#",
])
def test_radiotherapy_fractions_are_not_fractures(extractor, text):
    assert not find(extractor.mentions(text, "RADIOTHERAPY NOTE"), "FRACTURE"), text


@pytest.mark.parametrize("text, concept", [
    ("Old # T8.", "FRACTURE"),                      # a '#' with a level is a fracture
    ("L1 # 3/12 ago, healing.", "FRACTURE"),        # three months ago, not a fraction
    ("Urosepsis, on IV pip-taz.", "INFECTION"),
])
def test_fractions_and_protocol_guards(extractor, text, concept):
    assert find(extractor.mentions(text, "CLINIC NOTE"), concept), text


@pytest.mark.parametrize("text", [
    "T >=38 -> neutropenic sepsis pathway, sepsis 6.",
    "Sepsis 6 completed in ED 23:15.",
    "Pedestrian hit by a car; CT trauma series.",
    "Midline TTP over T11, no step.",
])
def test_protocols_and_look_alike_abbreviations_are_not_mentions(extractor, text):
    found = [m for m in extractor.mentions(text, "ED NOTE") if m["concept"] in ("INFECTION", "COAGULOPATHY")]
    assert not found, text


@pytest.mark.parametrize("text, values", [
    ("Labs (trend):\n  Plt 68 (8/2) -> 57 (8/4) -> 44 (today)", [(68.0, True), (57.0, True), (44.0, False)]),
    ("INR trended 3.6 ->\n3.1 -> 2.8 today.", [(3.6, True), (3.1, True), (2.8, False)]),
    ("Thrombocytes 38 -> 44 -> 52", [(38.0, True), (44.0, True), (52.0, False)]),
    ("INR 3,1 -> 2,9 heute", [(3.1, True), (2.9, False)]),  # a decimal comma
    ("Plt 45 (>50 needed).", [(45.0, False)]),  # a threshold beside it is not a trend
])
def test_a_lab_trend_ends_with_the_latest(extractor, text, values):
    found = [(m["value"], m["historical"]) for m in find(extractor.mentions(text, "PROGRESS NOTE"), "COAGULOPATHY")]
    assert found == values, text


@pytest.mark.parametrize("text, needle, attrs", [
    # a denial of change, not of the fracture: negated and new, as 'no new fracture at L1'
    ("No further collapse of L1.", None, dict(negated=True, new=True, levels=["L1"])),
    ("T12: no further height loss.", None, dict(negated=True, new=True, levels=["T12"])),
    ("T12: stable, no further height loss.", None, dict(negated=True, acuity="chronic")),
    ("No progression of the L1 fracture.", None, dict(negated=True, new=True)),
    # an outright denial says nothing about change
    ("T12: normal height and marrow signal, no fracture.", None, dict(negated=True, new=False)),
    ("No compression fracture at T12 or L1.", None, dict(negated=True, new=False, levels=["T12", "L1"])),
    # 'further' without 'no' is not a denial; it neither negates nor (yet) ages
    ("Further collapse of L1 since the prior study.", None, dict(negated=False)),
    # a densitometry site left out because of the fracture
    ("DXA: L-spine not reportable (L1 deformity, T12 cement).", "deformity",
     dict(negated=False, levels=["L1"])),
    ("L1-L4 not assessable: L3 fracture.", None, dict(negated=False, levels=["L3"])),
    ("Spine not reportable due to L1 and L2 fractures.", None, dict(negated=False)),
    # guard: not assessable *for* a fracture is no finding
    ("L1 not evaluable for fracture due to motion.", None, dict(negated=True)),
])
def test_denials_of_change_and_sites_left_out(extractor, text, needle, attrs):
    assert_attrs(one(extractor, text, "FRACTURE", "MRI LUMBAR SPINE", needle), attrs, text)


def test_other_than_ends_a_negation(extractor):
    text = "No fracture other than the known L1 fracture."
    first, known = find(extractor.mentions(text, "CT SPINE"), "FRACTURE")
    assert first["negated"] and not known["negated"]
    assert known["levels"] == ["L1"]


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # fears and possibilities in a patient's words
    ("I'm scared I've got cancer in my bones too.", "MALIGNANCY", None, dict(uncertain=True)),
    ("I'm afraid it's another compression fracture.", "FRACTURE", None, dict(uncertain=True)),
    ("Wife worried this is the infection back.", "INFECTION", None, dict(uncertain=True)),
    ("1. I think it is reasonable to continue heparin.", "ANTICOAGULANT", None, dict(uncertain=False)),
    ("They can check it for blood and infection.", "INFECTION", None, dict(uncertain=True)),
    ("New back pain in myeloma needs checking, because it can be a sign of a compression fracture.",
     "FRACTURE", None, dict(uncertain=True)),
    ("The ME considered 'pneumonia' and did not include it.", "INFECTION", None, dict(uncertain=True)),
    ("Surgery considered for the epidural abscess.", "EPIDURAL_DISEASE", None, dict(uncertain=False)),
    # denials
    ("Nothing on the x-ray suggests cancer, but to be thorough I have requested blood tests.",
     "MALIGNANCY", None, dict(negated=True)),
    ("The repeat count of 156 in citrate excluded thrombocytopenia.", "COAGULOPATHY", None, dict(negated=True)),
    ("Myeloma must be excluded before these are treated as osteoporosis.", "MALIGNANCY", None,
     dict(negated=True)),
    ("Apixaban held (an apparently low platelet count later shown to be artefactual).", "COAGULOPATHY",
     None, dict(negated=True)),
    # guards: excluded from something, because of it
    ("She was excluded from the trial because of thrombocytopenia.", "COAGULOPATHY", None,
     dict(negated=False)),
    # what may happen, not what is
    ("We discussed the risks, which include infection (less than 1 in 1,000).", "INFECTION", None,
     dict(hypothetical=True)),
    ("Chemotherapy lowers your resistance to infection.", "INFECTION", None, dict(hypothetical=True)),
    # infections in the plural, 'recurrent': a tendency over the years
    ("5. Recurrent urinary tract infections", "INFECTION", None, dict(historical=True)),
    ("Recurrent UTIs, now on IV ceftriaxone for urosepsis.", "INFECTION", "urosepsis", dict(historical=False)),
    ("Recurrent discitis at L4-5 with a new abscess.", "INFECTION", "discitis", dict(historical=False)),
])
def test_wave_24_fears_denials_and_risks(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "CLINIC LETTER", needle), attrs, text)


@pytest.mark.parametrize("text, absent", [
    ("Minimally displaced fractures of the left L1, L2 and L3 transverse processes.", "FRACTURE"),
    ("MRI total spine (STAT, cord compression protocol).", "EPIDURAL_DISEASE"),
    ("T11: myelomatous involvement and superimposed acute fracture edema.", "FRACTURE"),
])
def test_processes_protocols_and_fracture_oedema_are_not_these_findings(extractor, text, absent):
    assert not find(extractor.mentions(text, "CT LUMBAR SPINE"), absent), text


def test_fracture_oedema_is_oedema_at_its_level(extractor):
    text = "T11: myelomatous involvement and superimposed acute fracture edema."
    assert_attrs(one(extractor, text, "OEDEMA", "MRI THORACIC SPINE"), dict(levels=["T11"], negated=False), text)


def test_a_list_after_another_sentence_does_not_give_its_levels(extractor):
    # "- T6:" heads the next item, not a list of the fractures of the item before
    text = ("- T11: New fracture with height loss. Diffuse STIR hyperintensity of the\n"
            "  body with enhancement, consistent with myeloma and superimposed\n"
            "  acute fracture change. No retropulsion.\n- T6: 9 mm lytic lesion.")
    mentions = extractor.mentions(text, "MRI THORACIC SPINE")
    assert all(m["levels"] == ["T11"] for m in mentions if m["concept"] in ("FRACTURE", "RETROPULSION")), text
    listed = "There are two acute compression fractures.\n- T12: 20% height loss\n- L1: 30% height loss"
    assert one(extractor, listed, "FRACTURE", "MRI", "compression fractures")["levels"] == ["T12", "L1"]


DDX_NOTE = ("A/P:\n# Low back pain 2/2 L1 compression fracture\n"
            "- DDx for etiology of the L1 deformity (for completeness):\n"
            "  1) osteoporotic - most likely, as above\n"
            "  2) infectious - vertebral osteomyelitis/discitis; very unlikely, afebrile,\n"
            "     WBC normal.\n"
            "# Recent CAP - completed antibiotics 2/13\n"
            "- Plan: MRI to assess for an L2 fracture.")


def test_a_differential_heading_covers_its_list(extractor):
    mentions = extractor.mentions(DDX_NOTE, "PROGRESS NOTE")
    assert_attrs(one(extractor, DDX_NOTE, "INFECTION", "PROGRESS NOTE", "discitis"),
                 dict(uncertain=True, section="assessment_plan"), DDX_NOTE)
    # the list ends with the next problem, which is back in the assessment and plan
    cap = find(mentions, "INFECTION", "CAP")[0]
    assert (cap["uncertain"], cap["section"]) == (False, "assessment_plan")
    inline = ("- DDx for the current pain: (a) acute L2 fracture vs (b) chronic deformity;\n"
              "  (c) vertebral osteomyelitis - afebrile, low suspicion\n- Continue apixaban.")
    assert one(extractor, inline, "INFECTION", "PROGRESS NOTE", "osteomyelitis")["uncertain"]
    assert not one(extractor, inline, "ANTICOAGULANT", "PROGRESS NOTE")["uncertain"]


def test_after_a_differential_line_the_plan_goes_on(extractor):
    text = "Plan:\nDDx: discitis vs mets.\nMRI to assess for L1 fracture."
    assert_attrs(one(extractor, text, "FRACTURE", "PROGRESS NOTE"), dict(hypothetical=True, uncertain=False), text)


def test_an_order_quoted_as_the_clinical_history_is_the_indication(extractor):
    text = ("MRI LUMBAR SPINE\nClinical history (from order): \"L2 burst fx, eval PLC\"\n"
            "FINDINGS: L2 normal; there is no L2 fracture. L3: acute burst fracture.")
    assert one(extractor, text, "FRACTURE", "MRI LUMBAR SPINE", "burst fx")["section"] == "indication"


@pytest.mark.parametrize("text, historical", [
    # today's value, then one quoted from an earlier day: the quoted one is not the latest
    ("Bloods today 07:10: Hb 121  Plt 238  INR 1.2  APTT 29 s\n    (INR 2.4 in clinic 22/05 - now within"
     " the limit)", {"INR 1.2": False, "INR 2.4": True}),
    ("INR 1.2 (today), INR 2.4 on 22/05.", {"INR 1.2": False, "INR 2.4": True}),
    # a dated value after one of unknown day, or alone, is kept
    ("LABS: INR 2.8 on arrival -> vitamin K 5 mg IV; INR 1.3 on 31/05.", {"INR 2.8": False, "INR 1.3": False}),
    ("For AF -- INR 2.6 at anticoag clinic 28/05.", {"INR 2.6": False}),
    # a day that may be the note's own (2 June, or 6 February) is not before it
    ("INR 1.2 today; INR 2.4 (6/2).", {"INR 1.2": False, "INR 2.4": False}),
])
def test_a_value_quoted_from_an_earlier_day_after_todays(extractor, text, historical):
    import datetime
    found = {m["lexical_variant"]: m["historical"] for m in
             extractor.mentions(text, "PRE-PROCEDURE CHECKLIST", datetime.date(2025, 6, 2))
             if m["concept"] == "COAGULOPATHY" and m["lab"] == "INR"}
    assert found == historical, text


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # other people's illnesses: friends, a wife's, a wrapped bracket
    ("Patient mentions a friend from church had a spine fracture last year.", "FRACTURE", None,
     dict(family=True)),
    ("He was talking about his wife,\nwho is having chemotherapy for lymphoma.", "MALIGNANCY", None,
     dict(family=True)),
    ("Daughter worried mum is like her aunt (pt's\nsister) who had crush fractures in her spine.",
     "FRACTURE", None, dict(family=True)),
    # guards: a friend who speaks for or goes with the patient
    ("Per girlfriend, pt was intoxicated and has back pain 8/10 after a fall.", "PAIN", None,
     dict(family=False)),
    ("Walks daily with a friend; back pain 6/10.", "PAIN", None, dict(family=False)),
    ("Friend reports she has had fevers for three days.", "INFECTION", None, dict(family=False)),
    ("d/w daughter (HCP) who would consider kyphoplasty only if pain not controllable.", "PRIOR_AUGMENTATION",
     None, dict(family=False)),
    # a fear of a return
    ('Patient is worried that "the cancer\'s come back in my spine".', "MALIGNANCY", None,
     dict(uncertain=True)),
    ("She is afraid the infection has come back.", "INFECTION", None, dict(uncertain=True)),
    # an episode one is well since, or that settled with its treatment
    ("Chest fine since April chest infection. On apixaban.", "INFECTION", None, dict(historical=True)),
    ("Fever since yesterday, now on IV antibiotics.", "INFECTION", "fever", dict(historical=False)),
    ("Her urinary tract infection in early February settled with nitrofurantoin.", "INFECTION", None,
     dict(corrected="resolved")),
    ("T 38.1. Febrile on arrival, settled with paracetamol.", "INFECTION", None, dict(corrected="")),
    # a kind of fracture explained, not this patient's
    ("Explained that kyphoplasty is for fresh painful fractures, not old healed ones, and his L3 pain is "
     "settling.", "FRACTURE", None, dict(hypothetical=True)),
    ("MRI can tell, because a recent compression fracture shows swelling in the bone that an old one "
     "does not.", "FRACTURE", None, dict(hypothetical=True)),
    ("Acute L1 compression fracture, not an old one.", "FRACTURE", None, dict(hypothetical=False)),
    # a catheter-associated urinary infection
    ("A: E. coli CAUTI, improving on cephalexin.", "INFECTION", None, dict(negated=False, scope="systemic")),
    # a cancer with its year is one treated; not one that spread, came back or is myeloma
    ("PMH: breast cancer 2017 (WLE + RT), hypothyroidism.", "MALIGNANCY", None, dict(historical=True)),
    ("Prostate cancer 2015 -- radical prostatectomy, PSA undetectable.", "MALIGNANCY", None,
     dict(historical=True)),
    ("Metastatic breast cancer (2022), on letrozole.", "MALIGNANCY", "cancer", dict(historical=False)),
    ("Biochemical recurrence of prostate cancer after RALP (2021), PSA 9.6.", "MALIGNANCY", None,
     dict(historical=False)),
    ("IgG myeloma 2021, on lenalidomide.", "MALIGNANCY", None, dict(historical=False)),
    ("Tumour: high-grade papillary urothelial carcinoma (WHO 2022), pT1.", "MALIGNANCY", None,
     dict(historical=False)),
    # a cancer one is a survivor of
    ("2. Breast cancer survivorship - no evidence of recurrence clinically.", "MALIGNANCY", None,
     dict(historical=True)),
    ("Breast cancer survivor, disease-free for 11 years.", "MALIGNANCY", None, dict(historical=True)),
    ("Metastatic prostate cancer, no evidence of recurrence at the primary site.", "MALIGNANCY", "cancer",
     dict(historical=False)),
])
def test_wave_25_other_people_fears_and_episodes_over(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "CLINIC LETTER", needle, date="2025-06-01"), attrs, text)


@pytest.mark.parametrize("text, concept", [
    # a service, a clinic or a board named after a cancer, and a risk score
    ("BREAST CANCER SURVIVORSHIP CLINIC\nAnnual review.", "MALIGNANCY"),
    ("Seen in the Myeloma Clinic today; discussed at tumour board.", "MALIGNANCY"),
    ("Tumour markers normal.", "MALIGNANCY"),
    ("FRAX (without BMD): 10-year major osteoporotic fracture probability 8.4%.", "FRACTURE"),
    # wedging the next sentence explains as Scheuermann's
    ("There is mild anterior wedging of T7, T8 and T9 with Schmorl's nodes at T8-T10. The appearances "
     "are of old Scheuermann's disease.", "FRACTURE"),
])
def test_names_scores_and_explained_wedging_are_not_findings(extractor, text, concept):
    assert not find(extractor.mentions(text, "DXA REPORT"), concept), text


def test_wedging_the_next_sentence_calls_a_fracture_stays(extractor):
    text = "There is mild anterior wedging of T12. The appearances are of an acute fracture."
    assert one(extractor, text, "FRACTURE", "XR SPINE", "wedging")["levels"] == ["T12"]
    listed = "2. Breast cancer survivorship - no evidence of recurrence."
    assert find(extractor.mentions(listed, "CLINIC LETTER"), "MALIGNANCY"), listed


def test_a_report_quoted_under_a_background_heading_is_the_notes_own(extractor):
    # the past history's paragraph ends at a line that heads an imaging report quoted below it
    text = ("Background: 79F, AF (apixaban on hold), osteoporosis, GLF 3/11. MRI done today.\n"
            "MRI T/L spine w/o (final, Dr. Vashti, 3/13):\n"
            ' "Acute L1 superior endplate compression fracture with marrow edema on STIR."')
    assert_attrs(one(extractor, text, "FRACTURE", "CROSS-COVER NOTE"), dict(historical=False, levels=["L1"]), text)
    assert one(extractor, text, "OSTEOPOROSIS", "CROSS-COVER NOTE")["section"] == "history"
    # guard: a dated study inside the history, its finding on the same line, stays history
    listed = "PMH: osteoporosis\nMRI 2019: L1 compression fracture, treated conservatively.\nHTN"
    assert one(extractor, listed, "FRACTURE", "CLINIC NOTE")["historical"], listed


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # an infection's episode with its days, over more than a month before the note
    ("- Febrile neutropenia 02/03-06/03/2025: cultures negative, meropenem stopped 06/03.", "INFECTION", None,
     dict(historical=True)),
    ("Well in himself. Febrile neutropenia admission 02/03-07/03\n(meropenem stopped).", "INFECTION", None,
     dict(historical=True)),
    # guards: one still treated, one that ends on the note's day (an episode whose days ended before the
    # note's is over, however near: "UTI 01/04-03/04." is history since session 28)
    ("MSSA bacteremia 02/03-06/03, still on IV cefazolin via PICC.", "INFECTION", "bacteremia",
     dict(historical=False)),
    ("UTI 14/04-16/04.", "INFECTION", None, dict(historical=False)),
    ("UTI 01/04-03/04.", "INFECTION", None, dict(historical=True)),
    # a diagnosis taken off the record
    ('Please remove "UTI" from the EPR problem list.', "INFECTION", None, dict(negated=True)),
    ('5. "UTI" removed from the problem list 23/09 -- confirmed.', "INFECTION", None, dict(negated=True)),
    # questions and possibilities
    ("Bacteriuria in ED -- please comment on discitis.", "INFECTION", None, dict(uncertain=True)),
    ("4. Examine for metastatic foci: spine, joints, skin, heart murmur.", "MALIGNANCY", None,
     dict(uncertain=True)),
    ("Recent fall, so an osteoporotic or insufficiency fracture of L1 is the other possibility.", "FRACTURE",
     None, dict(uncertain=True)),
    # a low count normal on its recheck
    ("5. Low platelets on arrival (48 on 8/12), normal on 8/28 recheck (131).", "COAGULOPATHY", None,
     dict(corrected="resolved")),
])
def test_wave_26_episodes_over_records_and_questions(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "CLINIC NOTE", needle, date="2025-04-16"), attrs, text)


@pytest.mark.parametrize("text, concept", [
    ("T10: 20 Gy in 5 #, first # tomorrow, then 4 further # Mon-Thu. Carrow linac.", "FRACTURE"),
    ("EBRT 20 Gy in 5 fx to T8-T10, fx 1 given 9/30.", "FRACTURE"),
    ("Radiotherapy started 06/30 (20 Gy/5 fx to T8-T10; fx 2 is today). Plan is kyphoplasty.", "FRACTURE"),
    ("Palliative RT to L2-L4, 20 Gy in 5 #, started 17/09 (# 1-3 given 17, 18, 19/09); # 4-5 as outpatient.",
     "FRACTURE"),
    ("[x] no metastatic infection -- MRI spine 17/10: no discitis.", "MALIGNANCY"),
])
def test_fractions_and_metastatic_infection_are_not_these_findings(extractor, text, concept):
    assert not find(extractor.mentions(text, "ONCOLOGY NOTE"), concept), text


def test_a_value_quoted_from_an_earlier_day_after_the_notes_day(extractor):
    text = "- Bloods 16/04: neutrophils 1.9, Plt 78 (Plt 44 on 14/04), CRP 4."
    values = find(extractor.mentions(text, "WARD ROUND", "2025-04-16"), "COAGULOPATHY")
    assert [(m["value"], m["historical"]) for m in values] == [(78.0, False), (44.0, True)]
    # guard: a line of another day says nothing about today's
    earlier = "- Bloods 12/04: Plt 78 (Plt 44 on 10/04)."
    values = find(extractor.mentions(earlier, "WARD ROUND", "2025-04-16"), "COAGULOPATHY")
    assert [m["historical"] for m in values] == [False, False]


def test_a_plan_under_one_problem_ends_at_the_next(extractor):
    text = ("1. Low back pain (from 16/11)\n   Better. XR: no new fracture.\n"
            "   Plan: continue paracetamol, gentle walking, heat.\n\n"
            "2. L shin cellulitis\n   Scratched on fence wire 20/11. Day 3 of 7.")
    assert_attrs(one(extractor, text, "INFECTION", "CLINIC NOTE"), dict(hypothetical=False), text)
    listed = "A/P:\n1. Back pain\n   Plan: MRI L-spine to look for a compression fracture.\n2. UTI - nitrofurantoin"
    assert_attrs(one(extractor, listed, "INFECTION", "CLINIC NOTE"),
                 dict(hypothetical=False, section="assessment_plan"), listed)
    # guard: text at the margin that starts no item goes on with the plan
    wrapped = "   Plan:\nMRI to assess for fracture of the lumbar spine."
    assert one(extractor, wrapped, "FRACTURE", "CLINIC NOTE")["hypothetical"], wrapped


@pytest.mark.parametrize("text, concept, needle, family", [
    # someone the note introduces by name, as the subject of the clause
    ("Social: lives with husband Bernard (81) in a bungalow. Bernard has myeloma and has had vertebral "
     "fractures from it.", "FRACTURE", None, True),
    ("HPC (collateral from daughter Sandra, main carer).\nSandra (58) is herself having chemotherapy for "
     "breast cancer (cycle 3 of 6).", "MALIGNANCY", None, True),
    ("Present: patient and husband (Harold, 86). Harold has had pneumonia this month.", "INFECTION", None, True),
    ("Rosa, his wife, came with him. Rosa herself is on warfarin for AF.", "ANTICOAGULANT", None, True),
    # a carer's own problems, listed after the colon
    ("Harold is her main support but has his own health problems:\nprostate cancer with bone spread, on "
     "hormone injections, and is on warfarin for AF.", "ANTICOAGULANT", None, True),
    ("Her husband has his own health problems including prostate cancer.", "MALIGNANCY", None, True),
    # guards: a relative who tells, notices or is told; a name the note does not introduce
    ("Seen with daughter Sandra. Sandra has noticed a fever since Tuesday.", "INFECTION", None, False),
    ("Seen with daughter Sandra. Sandra was told about the T8 compression fracture.", "FRACTURE", None, False),
    ("Husband Harold present. Harold reports she has had a fever.", "INFECTION", None, False),
    ("Bernard has myeloma with an L2 pathological fracture.", "MALIGNANCY", None, False),
    ("Lives with wife Rosa. Bernard has myeloma.", "MALIGNANCY", None, False),
])
def test_wave_27_someone_else_named_as_the_subject(extractor, text, concept, needle, family):
    assert one(extractor, text, concept, "CLINIC NOTE", needle)["family"] is family, text


@pytest.mark.parametrize("text, date, concept, needle, attrs", [
    # a stay in hospital named by an earlier month
    ("Since last seen (January): admission in June with urosepsis and delirium, now back to her baseline.",
     "2025-07-15", "INFECTION", None, dict(historical=True)),
    ("She has recovered well from the admission in July for febrile neutropenia.", "2025-09-02", "INFECTION",
     None, dict(historical=True)),
    # guards: this month's stay, one whose treatment goes on
    ("She was admitted in July with urosepsis, IV ceftriaxone day 3.", "2025-07-15", "INFECTION", "urosepsis",
     dict(historical=False)),
    ("Admission in June with pneumonia, still on amoxicillin.", "2025-07-15", "INFECTION", "pneumonia",
     dict(historical=False)),
    # fully recovered, the treatment in brackets between
    ("Other history: hypertension, pneumonia\nearly January 2025 (GP, amoxicillin), fully recovered.",
     "2025-02-07", "INFECTION", None, dict(corrected="resolved")),
    # guard: a count recovered is the count's, not the sepsis behind it
    ("(a) Sepsis-associated thrombocytopenia, nadir Plt 41 (15/10), recovered -\n    Plt 132 on 19/10.",
     "2025-10-30", "INFECTION", None, dict(corrected="")),
    # readings weighed against each other
    ("A fresh L3 fracture after the lifting trauma is clinically plausible, but cannot be\nproven.", "2025-08-21",
     "FRACTURE", None, dict(uncertain=True)),
    ("An older fracture of LWK 3 is equally possible, as there is no prior imaging.", "2025-08-21", "FRACTURE",
     None, dict(uncertain=True, levels=["L3"])),
    ("Acute L3 fracture with oedema; kyphoplasty is a plausible option.", "2025-08-21", "FRACTURE", None,
     dict(uncertain=False)),
    # what a test can show
    ("No erosion at the spinous processes, but radiographs are insensitive in early osteomyelitis.",
     "2025-09-04", "INFECTION", None, dict(hypothetical=True)),
    ("MRI: L2-3 discitis with a small epidural phlegmon.", "2025-09-04", "INFECTION", None,
     dict(hypothetical=False)),
])
def test_wave_27_past_stays_recoveries_and_weighed_readings(extractor, text, date, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "CLINIC NOTE", needle, date=date), attrs, text)


def test_wedging_within_the_range_of_a_kyphosis_rather_than_fracture(extractor):
    text = ("Mild anterior wedging of T7 and T9 (10-15%) is within the range seen with senile kyphosis rather\n"
            "than fracture. Moderate T8 wedge compression fracture.")
    assert [m["levels"] for m in find(extractor.mentions(text, "XR THORACIC SPINE"), "FRACTURE")
            if not m["negated"]] == [["T8"]]


def test_a_table_column_answered_no_in_every_row(extractor):
    table = ("Date     | Size (cm) | Exudate | Infection signs | Pain | Sign\n"
             "04/03/25 | 3.4 x 2.1 | low ser | N               | 2/10 | RB\n"
             "06/03/25 | 3.2 x 2.0 | low ser | nil             | 3/10 | JM\n\nComments: healing.")
    assert one(extractor, table, "INFECTION", "WOUND CHART")["negated"]
    # guard: a row that answers yes
    answered = "Date | Temp | Fever | Sign\n04/03 | 38.5 | Y | AB\n05/03 | 37.0 | N | AB"
    assert not one(extractor, answered, "INFECTION", "OBS CHART")["negated"]


def test_oedema_without_t1_change_in_a_foot_is_no_vertebras(extractor):
    text = "Marrow oedema without T1 change at the base of the 2nd proximal phalanx."
    assert not find(extractor.mentions(text, "MRI FOOT"), "OEDEMA"), text


@pytest.mark.parametrize("text, attrs", [
    # what an earlier study showed, or what is known, is a finding: the question is its age
    ("CLINICAL INDICATION: 84F, fall 1/30, L1 fracture on CT, persistent pain. Assess acuity.",
     dict(uncertain=False, levels=["L1"])),
    ("Clinical details: 79F, fall, T12 wedge # of indeterminate age on XR 06/03, ?acute.",
     dict(uncertain=False, acuity="indeterminate")),
    ("Clinical details: Known old L3 wedge #.\nComparison: CT 19/02/2025.", dict(uncertain=False)),
    # ... and "new" on that study is not an age
    ("INDICATION: 69F with new T12 and L2 compression fractures on XR 9/3. Assess acuity.",
     dict(uncertain=False, acuity="", new=False)),
    # guards: the indication's own questions
    ("INDICATION: rule out fracture.", dict(uncertain=True)),
    ("Indication: back pain, ?L1 fracture on XR.", dict(uncertain=True)),
    ("INDICATION: Fall. L1 compression fracture? Assess.", dict(uncertain=True)),
])
def test_an_indication_states_what_an_earlier_study_showed(extractor, text, attrs):
    assert_attrs(one(extractor, text, "FRACTURE", "MRI LUMBAR SPINE", date="2025-09-10"), attrs, text)


@pytest.mark.parametrize("table, latest", [
    # a flowsheet's row under a head of days: the latest day's value is the value
    ("Results:\n            04/08    05/08    06/08    07/08\nHb           104       91       95       97\n"
     "Plt          233      208      214      226\nINR          4.6      1.2      1.2      1.3\n",
     {"platelets": 226.0, "INR": 1.3}),
    # the days the other way round, a dash for a day without a value, the unit in brackets
    ("Labs:\n              07/08    06/08    05/08\nPlt (x10^9/L)  41       72       163\nINR            1.7      -        1.2\n",
     {"platelets": 41.0, "INR": 1.7}),
    # ISO days, days with their times, days month first
    ("Recent bloods:\n                2025-09-22   2025-10-06   2025-10-17\n  Plt (x10^9/L)  92           61"
     "            55\n", {"platelets": 55.0}),
    ("Recent Labs\n  Lab         02/09/25 2230   02/10/25 0455\n  HGB         11.9            11.4\n"
     "  PLT         198             205\n", {"platelets": 205.0}),
    ("LABS:\n          1/13     1/14     1/15\nPlt       112      71       38   (x10^9/L)\n", {"platelets": 38.0}),
])
def test_a_flowsheet_row_s_latest_day_is_its_value(extractor, table, latest):
    values = find(extractor.mentions(table, "PROGRESS NOTE", "2025-10-20"), "COAGULOPATHY")
    assert {m["lab"]: m["value"] for m in values if not m["historical"]} == latest, table
    assert all(m["historical"] for m in values if m["value"] != latest[m["lab"]]), table


def test_a_row_of_values_is_no_head_of_days(extractor):
    # guards: rows of decimals are values, not days ("11.9  11.4"); a reference range is no value
    text = "HGB         11.9            11.4\nPLT         198             205\n"
    assert [(m["value"], m["historical"]) for m in find(extractor.mentions(text, "NOTE"), "COAGULOPATHY")] == \
        [(198.0, False)]
    ranged = "Platelets     42   L   150-400\nINR  1.1    0.8-1.2\n"
    assert [(m["value"], m["historical"]) for m in find(extractor.mentions(ranged, "NOTE"), "COAGULOPATHY")] == \
        [(42.0, False), (1.1, False)]


def test_a_flowsheet_row_is_read_only_when_every_cell_can_be_its_lab():
    # a prothrombin time's cells are seconds: a row with a cell no PT can be is not read as one
    from pipeline.nlp.labs import find_lab_values
    head = "            04/08    05/08    06/08\n"
    read = [(v.lab, v.value, v.superseded) for v in find_lab_values(head + "PT          14.1     13.8     12.9\n")]
    assert read == [("PT", 14.1, True), ("PT", 13.8, True), ("PT", 12.9, False)]
    unread = [(v.lab, v.value, v.superseded) for v in find_lab_values(head + "PT          14.1     13.8     250\n")]
    assert unread == [("PT", 14.1, False)]


@pytest.mark.parametrize("text, concept, kept", [
    # an abbreviation the note spells out as something else
    ("Coverage: County Health Access Program (HAP) application started. HAP application submitted 07/03.",
     "INFECTION", 0),
    ("Individualized Treatment Plan (ITP) reviewed at the meeting; ITP goals met.", "COAGULOPATHY", 0),
    # guards: spelled out as itself, or not spelled out
    ("Dx: hospital-acquired pneumonia (HAP), on pip-tazo. HAP improving.", "INFECTION", 4),
    ("Immune thrombocytopenia (ITP), ITP on steroids.", "COAGULOPATHY", 3),
    ("HAP on day 3 of pip-tazo.", "INFECTION", 2),
])
def test_an_abbreviation_spelled_out_as_something_else(extractor, text, concept, kept):
    assert len(find(extractor.mentions(text, "NOTE"), concept)) == kept, text


def test_an_abbreviation_a_note_writes_as_a_programme_s_name(extractor):
    text = "HAP application submitted 07/03; referred to CHW to help with HAP and scheduling."
    assert not find(extractor.mentions(text, "CLINIC NOTE"), "INFECTION"), text
    # guard: antibiotic cover for a pneumonia
    covered = "HAP - broaden to HAP coverage with pip-tazo."
    assert len(find(extractor.mentions(covered, "CLINIC NOTE"), "INFECTION")) == 3, covered


@pytest.mark.parametrize("text, needle, corrected", [
    # a course's end reaches back past a semicolon
    ("Hospitalized 01/15-01/21/2025 for pneumococcal pneumonia with bacteremia; completed\nantibiotics 01/28/2025.",
     "pneumonia", "treated"),
    ("Admitted Feb with new AF + chest infection; completed 5 days doxycycline for CAP\nmid-Feb, cough now gone.",
     "chest infection", "treated"),
    # guards: a hold, a stop or a settling does not ("UTI; apixaban held" is the apixaban's)
    ("UTI on nitrofurantoin day 2; apixaban held for the procedure.", "UTI", ""),
    ("Fever 38.2 overnight; IV fluids stopped.", "Fever", ""),
])
def test_a_course_s_end_reaches_past_a_semicolon(extractor, text, needle, corrected):
    assert one(extractor, text, "INFECTION", "CLINIC NOTE", needle, date="2025-03-10")["corrected"] == corrected, text


@pytest.mark.parametrize("text, concept", [
    # what a payer's policy covers, requires or excludes, in the abstract
    ("SUR-112 section B requires an\nacute or subacute vertebral fracture documented by MRI (edema on STIR/T2).", "FRACTURE"),
    ("Bluewater Clinical Policy SUR-112 covers vertebral augmentation\nonly for an acute or subacute osteoporotic "
     "vertebral compression fracture with bone marrow edema on MRI.", "OEDEMA"),
    ("Policy criterion I.B (abstract): vertebral augmentation is covered for a painful osteoporotic\nvertebral "
     "compression fracture when an acute fracture is confirmed by MRI.", "FRACTURE"),
    ("Discussion: Policy VA-07 lists uncorrected coagulopathy as an exclusion.", "COAGULOPATHY"),
])
def test_a_policy_s_criteria_are_not_the_patient_s(extractor, text, concept):
    assert all(m["hypothetical"] for m in find(extractor.mentions(text, "UM REVIEW"), concept)), text
    assert find(extractor.mentions(text, "UM REVIEW"), concept), text


def test_what_the_patient_requires_is_the_patient_s(extractor):
    text = "She requires IV antibiotics for the L2 discitis. The L1 fracture requires cement."
    assert not any(m["hypothetical"] for m in find(extractor.mentions(text, "CLINIC NOTE"), "INFECTION")), text
    assert not one(extractor, text, "FRACTURE", "CLINIC NOTE")["hypothetical"], text


def test_what_a_long_past_procedure_was_done_for_is_past(extractor):
    text = "s/p L1 kyphoplasty 06/2022 (Dr. Harrowgate) for a painful L1 compression fracture."
    assert one(extractor, text, "FRACTURE", "PA REQUEST", date="2025-05-05")["historical"], text
    # guards: a procedure two weeks ago, or without its date
    recent = "2 weeks status post L1 kyphoplasty performed on 09/16/2025 for an acute L1 compression fracture."
    assert not one(extractor, recent, "FRACTURE", "CLINIC NOTE", date="2025-09-30")["historical"], recent
    undated = "Prior L1 kyphoplasty for a painful L1 compression fracture."
    assert not one(extractor, undated, "FRACTURE", "CLINIC NOTE", date="2025-09-30")["historical"], undated


def test_an_icd_title_s_pair_of_vertebrae_is_the_one_the_note_describes(extractor):
    text = ("Dx: S22.080A Wedge compression fracture of T11-T12 vertebra, initial encounter for closed fracture\n"
            "XR: new T12 compression fracture (~40% height loss). Known chronic L2 wedge deformity.")
    assert [m["levels"] for m in find(extractor.mentions(text, "PA REQUEST"), "FRACTURE")][:2] == [["T12"], ["T12"]]


def test_posterior_element_fractures_written_with_a_hyphen(extractor):
    text = "CT: left L2 and L3 transverse process fractures, which are posterior-element fractures."
    assert not [m for m in find(extractor.mentions(text, "UM REVIEW"), "FRACTURE") if not m["negated"]], text


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # a line that ends in "incl." goes on in the next
    ("Consent discussed: benefits - pain relief in most; risks incl.\ncement leak, infection, bleeding.",
     "INFECTION", "infection", dict(hypothetical=True)),
    # guard: a line that ends in a full stop after a word ends its sentence
    ("Consent discussed: risks reviewed.\nInfection: cellulitis of the left shin.", "INFECTION", "cellulitis",
     dict(hypothetical=False)),
    # what a procedure is for, said of "it"
    ("His wife asked about the cement injection she had. I explained it is for painful recent fractures and is "
     "not indicated for his T8 and L2 fractures.", "FRACTURE", None, dict(hypothetical=True)),
    # a report's finding taken back, or first read one way and then changed
    ("NB: The preliminary CT report of an L4 fracture was amended by the consultant's final report (limbus "
     "vertebra).", "FRACTURE", None, dict(negated=True)),
    ("No retropulsion; the query of retropulsion on the preliminary report is withdrawn.", "RETROPULSION", None,
     dict(negated=True)),
    ("4. T12 normal; the external 2023 report of a T12 fracture is not supported.", "FRACTURE", None,
     dict(negated=True)),
    ("The T-spine x-ray was first read overnight as an\nacute T8 compression fracture; the attending's final read "
     "changed this to an old T8 fracture.", "FRACTURE", "compression", dict(negated=True)),
    # guards: a change of what the report says; a first reading that stood
    ("The fracture level was amended to L1.", "FRACTURE", None, dict(negated=False)),
    ("The L1 fracture was initially reported as acute and was confirmed on MRI.", "FRACTURE", None,
     dict(negated=False, acuity="acute")),
    # a cancer's risk group is no risk of one
    ("PMH: MDS (low risk), transfusion dependent.", "MALIGNANCY", None, dict(hypothetical=False)),
    ("Prostate cancer (high risk) on ADT.", "MALIGNANCY", None, dict(hypothetical=False)),
    # guards: a risk of the disease
    ("Pneumonia risk: bedbound.", "INFECTION", None, dict(hypothetical=True)),
    ("High risk of rebound vertebral fractures after stopping denosumab.", "FRACTURE", None,
     dict(hypothetical=True)),
])
def test_reports_taken_back_and_sentences_run_on(extractor, text, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, "CLINIC NOTE", needle), attrs, text)


@pytest.mark.parametrize("text, concept, kept", [
    # a service's name, not cord compression
    ("MRI whole spine - urgent MSCC slot 03/05/2025 08:00.", "EPIDURAL_DISEASE", 0),
    ("Assessment: does not meet MSCC criteria - no neurological symptoms.", "EPIDURAL_DISEASE", 0),
    ("Safety-netting for MSCC symptoms reiterated.", "EPIDURAL_DISEASE", 0),
    ("MSCC triage 10/03 - MRI whole spine booked 12/03.", "EPIDURAL_DISEASE", 0),
    ("Infection check before procedure: afebrile, urine dip negative, CRP 6.", "INFECTION", 1),  # afebrile
    ("Neutropenic sepsis screening pathway followed.", "INFECTION", 1),  # the sepsis, not its screening
    # guards: the finding
    ("MSCC at T9 with ESCC 3.", "EPIDURAL_DISEASE", 2),
    ("Infection: cellulitis of the left shin.", "INFECTION", 1),
])
def test_a_service_s_or_a_check_s_name_is_no_finding(extractor, text, concept, kept):
    assert len(find(extractor.mentions(text, "ACUTE ONCOLOGY"), concept)) == kept, text


def test_a_pharmacy_s_monitored_dosage_system_is_no_myelodysplasia(extractor):
    text = ("Sources: GP SCR, Lindsay's Pharmacy (weekly MDS). Carers give meds from the MDS.\n"
            "Bisoprolol 1.25 mg OD        | MDS, SCR              | HELD")
    assert not find(extractor.mentions(text, "PHARMACY"), "MALIGNANCY"), text
    # guard: the disease
    disease = "PMH: MDS, transfusion dependent. Plt 45."
    assert find(extractor.mentions(disease, "PHARMACY"), "MALIGNANCY"), disease


@pytest.mark.parametrize("text, needle", [
    ('Clarification: ward handover sheet reads "L2/L3 #" - these are the transverse\nprocesses only.', "#"),
    ("Explained the CT again: the fractures are of the transverse processes (the small bony bits).", "fractures"),
])
def test_a_fracture_said_to_be_of_the_processes_is_no_vertebral_one(extractor, text, needle):
    assert not find(extractor.mentions(text, "SPINE NOTE"), "FRACTURE", needle), text


def test_a_fracture_said_to_be_something_else_keeps_its_level(extractor):
    # guards: a fracture named again, and one beside process fractures
    text = "Acute L1 fracture, which is an osteoporotic compression fracture. L2 fracture is associated with TP fractures."
    assert [m["levels"] for m in find(extractor.mentions(text, "SPINE NOTE"), "FRACTURE")] == [["L1"], ["L1"], ["L2"]]


@pytest.mark.parametrize("text, family", [
    # a pronoun of the other sex than the patient's, after a relative the sentence names
    ("Pt: Rhodri P, 72M. Sources: wife Glenys.\nOTHER PEOPLE'S MEDICINES IN THE BAG: Glenys's alendronic acid "
     "(for her osteoporosis - she had two crush fractures in her spine in 2022, per pt).", True),
    ("81-year-old man. Lives with wife Maureen; she has COPD herself and was treated for a chest infection "
     "last month.", True),
    # guards: the patient's own sex; no relative named; the patient's sex not written, or written both ways
    ("68F. Her husband says she had an L1 fracture in 2020.", False),
    ("72M. Wife reports he had two crush fractures.", False),
    ("72M. Seen by Dr Ames; she has reviewed the L1 fracture.", False),
    ("Lives with wife Glenys; she had two crush fractures per pt.", False),
    ("72M, 16F catheter. Lives with wife Glenys; she had two crush fractures per pt.", False),
    # a pronoun that starts its sentence, after a sentence naming the patient's relative: "his" or
    # "her" says the patient's sex
    ("Social: Lorna is his main carer. She herself has osteoporosis and had two spinal crush fractures in "
     "2023.", True),
    ("Lives with her husband. He has had a crush fracture of L1 and takes warfarin.", True),
    ("Her son visits daily. He was admitted in May with a chest infection.", True),
    # guards: a pronoun of the patient's own sex; a verb of telling; a relative not the patient's
    ("Her daughter is her main carer. She herself has osteoporosis and had a T12 fracture last month.", False),
    ("His wife is his main carer. He has osteoporosis and had an L1 fracture last week.", False),
    ("His wife is worried. She has been told about the L1 fracture.", False),
    ("Wife at bedside. She has had two crush fractures.", False),
])
def test_a_pronoun_of_the_other_sex_after_a_relative_is_someone_else(extractor, text, family):
    concept = "INFECTION" if "infection" in text else "FRACTURE"
    assert find(extractor.mentions(text, "PHARMACY"), concept)[-1]["family"] is family, text


@pytest.mark.parametrize("text, corrected", [
    ("Heparin d/c 3/4 for the UTI. Abx d/c 3/4.", "held"),
    # guards: a discharge
    ("pt given written d/c instructions incl. signs of infection (fever) - to call/ED.", ""),
    ("Fever resolved w/ incentive spirometry; afebrile x72h prior to d/c.", ""),
])
def test_d_c_is_stopped_not_a_discharge(extractor, text, corrected):
    assert find(extractor.mentions(text, "DISCHARGE SUMMARY"), "INFECTION")[-1]["corrected"] == corrected, text


@pytest.mark.parametrize("text, thresholds", [
    # a threshold is a hypothetical value of its lab, not one measured
    ("IR require Plt >= 50 and INR <= 1.5.", [("platelets", 50.0), ("INR", 1.5)]),
    ("Continue heparin until INR >= 2.5 on two consecutive days, then stop.", [("INR", 2.5)]),
    ("When INR falls below 2.5 haematology to advise on UFH.", [("INR", 2.5)]),
    ("1 unit platelets if Plt < 50 before any procedure; platelets must be > 20.", [("platelets", 50.0),
                                                                                     ("platelets", 20.0)]),
    ("Transfuse if plt < 10k.", [("platelets", 10.0)]),
])
def test_a_lab_threshold_is_a_hypothetical_value(extractor, text, thresholds):
    values = find(extractor.mentions(text, "PHARMACY"), "COAGULOPATHY")
    assert [(m["lab"], m["value"]) for m in values] == thresholds, text
    assert all(m["hypothetical"] and not m["corrected"] for m in values), text


def test_a_threshold_leaves_the_measured_value_the_latest(extractor):
    text = "Plt 38 today (held enoxaparin); restart once Plt >= 50 on two counts. INR 1.1."
    values = [(m["value"], m["hypothetical"], m["historical"])
              for m in find(extractor.mentions(text, "WARD ROUND", "2025-01-14"), "COAGULOPATHY")]
    assert values == [(38.0, False, False), (50.0, True, False), (1.1, False, False)], text


@pytest.mark.parametrize("text, latest", [
    # lines that each start with their day: the latest day's value is the value
    ("Platelets:\n  13/01  Plt 38\n  14/01  1 unit platelets before planning\n  15/01  Plt 61\n  16/01  Plt 74\n",
     {"platelets": 74.0}),
    # newest first; days with their times; a run over the new year
    ("INR history:\n  17/03/25   INR 2.6\n  24/02/25   INR 3.1\n  27/01/25   INR 2.2\n", {"INR": 2.6}),
    ("Follow-up INR:\n  01/08 22:00   INR 3.1\n  01/09 06:05   INR 2.2\n", {"INR": 2.2}),
    ("12/30 INR 2.0\n01/02 INR 3.0\n", {"INR": 3.0}),
])
def test_dated_lines_of_a_lab_latest_day_is_its_value(extractor, text, latest):
    values = find(extractor.mentions(text, "PHARMACY", "2025-01-20"), "COAGULOPATHY")
    assert {m["lab"]: m["value"] for m in values if not m["historical"]} == latest, text
    assert len([m for m in values if not m["historical"]]) == 1, text


def test_a_line_of_several_dated_values_is_no_run_of_dated_lines(extractor):
    # guards: values on one line are a trend, read in order; a day written as a head is no value
    text = "Bloods - platelet trend:\n  01/09 182 | 16/09 141 | 18/09 Plt 88 | 20/09 Plt 61\n"
    values = find(extractor.mentions(text, "WARD ROUND", "2025-09-20"), "COAGULOPATHY")
    assert [m["value"] for m in values if not m["historical"]][-1:] == [61.0], text
    assert [m["value"] for m in find(extractor.mentions("Platelets:\n  13/01  Plt 38\n", "NOTE"), "COAGULOPATHY")] \
        == [38.0]


@pytest.mark.parametrize("text, concept, attrs", [
    # a drug stopped in a year gone by is not taken now
    ("PMH: AF - rate control with bisoprolol, apixaban stopped\n2023 after upper GI bleed, not restarted.",
     "ANTICOAGULANT", dict(historical=True, med_status="held")),
    ("Warfarin discontinued in March 2022 (falls).", "ANTICOAGULANT", dict(historical=True)),
    # guard: a hold now
    ("Apixaban stopped 2 days ago for the procedure.", "ANTICOAGULANT", dict(historical=False, med_status="held")),
    # advice about a condition
    ("Neutropenic sepsis advice: to ring AOS if temp 37.5 or above, or shivery.", "INFECTION",
     dict(hypothetical=True)),
    # guard: the condition and what was given for it
    ("Sepsis: on IV pip-taz, advice from micro awaited.", "INFECTION", dict(hypothetical=False)),
    # a procedure long ago, and what it was done for on the next line
    ("PMH:\n- Osteoporosis - old T11 and T12 wedge fractures (2022); L1 kyphoplasty 2021\n  for osteoporotic collapse\n"
     "- AF", "FRACTURE", dict(historical=True)),
])
def test_what_was_stopped_or_done_long_ago_and_advice(extractor, text, concept, attrs):
    found = find(extractor.mentions(text, "DN VISIT", "2025-02-24"), concept)
    assert_attrs(found[-1], attrs, text)



@pytest.mark.parametrize("text, attrs", [
    # an epidural haematoma is an epidural mass
    ("Small ventral epidural haematoma at L1 without cord compression.", dict(levels=["L1"], negated=False)),
    ("No epidural hematoma.", dict(negated=True)),
    ("Risk of spinal epidural haematoma with enoxaparin and the epidural catheter.", dict(hypothetical=True)),
])
def test_an_epidural_haematoma_is_epidural_disease(extractor, text, attrs):
    assert_attrs(one(extractor, text, "EPIDURAL_DISEASE", "MRI SPINE", "haematoma" if "haem" in text else "hematoma"),
                 attrs, text)
    # guard: the procedures stay procedures
    assert not has(extractor, "Epidural steroid injection at L4-5; epidural catheter removed.", "EPIDURAL_DISEASE", "NOTE")


@pytest.mark.parametrize("text, levels", [
    # the range a count or a trial's criterion is over is not where the fractures are
    ("Q1. Number of vertebral fractures T4-L5: 2  (T12, L2)\nQ2. Per-level description", [["T12", "L2"]]),
    ("[x]   1-3 painful VCF T5-L5, symptom onset < 6 weeks   -> L1, onset 27-JAN", [["L1"]]),
    ("I2  1 to 3 VCFs between T5 and L5 on plain film, CT or MRI ........ Y", [[]]),
    # a number with a unit after a level is no level
    ("Acute fractures at T12 and L1, 2-3 mm retropulsion at L1.", [["T12", "L1"]]),
    ("Fracture at L1, 2 mm retropulsion.", [["L1"]]),
    # a form's item is no vertebra
    ("F3 item C3 (adjacent-level fracture): wedge fracture of T11 confirmed.", [["T11"], ["T11"]]),
    # guards: a list of levels, a range that is the fractures', a cervical fracture
    ("Fractures of L1, 2 and 3.", [["L1", "L2", "L3"]]),
    ("Compression fractures T11-L1 with 30% height loss at T12.", [["T11", "T12", "L1"], ["T12"]]),
    ("Fracture of C3 on CT.", [["C3"]]),
])
def test_ranges_counts_and_items_that_are_no_fracture_s_levels(extractor, text, levels):
    assert [m["levels"] for m in find(extractor.mentions(text, "CRF"), "FRACTURE")] == levels, text


@pytest.mark.parametrize("text, concept, attrs", [
    # a value overtaken by a later one
    ("Unscheduled visit today 11-JUN-2025: INR 2.4 (local lab).\nThe Day 0 value of 12-MAY (INR 1.3) no longer "
     "applies.", "COAGULOPATHY", dict(value=1.3, historical=True)),
    # a trial's criterion and endpoint
    ("Eligibility: I1-I4 met. Exclusion E2 (any severe or > 2 moderate prevalent vertebral fractures)\npending "
     "central read of today's spine XR.", "FRACTURE", dict(hypothetical=True)),
    ("Spine XR repeated at Months 12 and 24 for incident morphometric vertebral fractures (primary endpoint).",
     "FRACTURE", dict(hypothetical=True)),
    # answered N after a colon, a count of none, a field not applicable
    ("E2 severe or > 2 moderate prevalent vertebral fractures: N (central read 17-JUN: none)", "FRACTURE",
     dict(negated=True)),
    ("Retropulsion (mm): 0", "RETROPULSION", dict(negated=True)),
    ("Th11 wedge fracture, age: [x] cannot be determined\n      Bone marrow oedema (MRI STIR): N/A", "OEDEMA",
     dict(uncertain=True)),
    # an age the form leaves unticked
    ("Th11: SQ grade 2 wedge deformity.\n      Fracture age: [ ] acute  [ ] subacute  [ ] chronic  [x] cannot be "
     "determined", "FRACTURE", dict(acuity="")),
    # guards: the unticked option is itself denied, with its age; a pain score of none; an age answered
    ("Please clarify:\n[ ] Acute traumatic compression fracture of L3\n[X] L3 compression fracture, age "
     "indeterminate", "FRACTURE", dict(negated=True, acuity="acute")),
    ("Back pain: 0/10 at rest, 6/10 on standing.", "PAIN", dict(negated=False)),
    # gait retropulsion under a mobility heading
    ("3. Mobility (PT): retropulsion and freezing at doorways, walks 10 m with 4WW + 1.", "RETROPULSION", None),
    # an epidural haematoma in the head
    ("HCT revealed a left parietal epidural hematoma.", "EPIDURAL_DISEASE", None),
])
def test_forms_criteria_and_answers(extractor, text, concept, attrs):
    found = find(extractor.mentions(text, "CRF", "2025-06-11"), concept)
    if attrs is None:
        assert not found, text
    else:
        assert_attrs(found[-1] if concept == "COAGULOPATHY" else found[0], attrs, text)


@pytest.mark.parametrize("text, title, concept, needle, attrs", [
    # an age asked after the fracture is no age told
    ("Clinical: 54F HbSS. Fall 08/05. L2 compression deformity on XR 10/05, ?acute. Known L1 fracture.",
     "MRI LUMBAR SPINE", "FRACTURE", "deformity", dict(acuity="indeterminate", uncertain=False)),
    ("Phoned pt. D9 # ?new ?old - would need MRI to age it.", "NOTE", "FRACTURE", None,
     dict(acuity="indeterminate", levels=["T9"])),
    # guards: a question whether there is a new fracture; an age told
    ("Q: ?new fracture at L2 - suitable for vertebroplasty?", "NOTE", "FRACTURE", None, dict(uncertain=True)),
    ("Acute L1 fracture. T12 fracture is old.", "MRI SPINE", "FRACTURE", None, dict(acuity="acute")),
    # screening software's output is a suggestion; its programme and product are names
    ("FP-2025-0388  Level L4  Score 0.71\n  Algorithm output: compression fracture, Genant 1\n  Ground truth "
     "(radiologist): limbus vertebra. No fracture.\n", "REGISTER", "FRACTURE", "compression", dict(uncertain=True)),
    ("Th12  VCF suspected  Genant est. 3  conf. 0.97", "CT", "FRACTURE", None,
     dict(uncertain=True, levels=["T12"])),
    # a list's items none with it
    ("3. Further lytic myeloma deposits (T6, L1, L4, sacrum), none with fracture.", "MRI SPINE", "FRACTURE", None,
     dict(negated=True)),
    # a haemophilia centre's carrier, a named relative's disorder, a relative with a name before a bracket
    ("3. Haemophilia B carrier - discuss with Haemophilia Centre.", "NOTE", "COAGULOPATHY", None, dict(family=True)),
    ("Daughter (Rachel) aware and popping in.\n- Rachel's VWD has no bearing on her mother's management.", "NOTE",
     "COAGULOPATHY", None, dict(family=True)),
    ("Her late father (d. 1979) and her son Liam (48) have moderate haemophilia B.", "NOTE", "COAGULOPATHY", None,
     dict(family=True)),
    # guards: the patient's own haemophilia; a carrier who bleeds
    ("Severe haemophilia A on emicizumab prophylaxis.", "NOTE", "COAGULOPATHY", None, dict(family=False)),
    ("She is a symptomatic carrier of haemophilia A (FVIII 0.32).", "NOTE", "COAGULOPATHY", None, dict(family=False)),
])
def test_ages_asked_software_output_lists_and_carriers(extractor, text, title, concept, needle, attrs):
    assert_attrs(one(extractor, text, concept, title, needle, "2025-05-13"), attrs, text)


@pytest.mark.parametrize("text, title, concept", [
    ("cc Haemophilia Comprehensive Care Centre; Dr Okonjo (Cardiology)", "LETTER", "COAGULOPATHY"),
    ("HAEMOPHILIA & THROMBOSIS CENTRE - HAEMOSTASIS CONSULTATION", "LETTER", "COAGULOPATHY"),
    ("VCF-AI OPPORTUNISTIC SCREEN (OsteoSight CT v2.4) | auto", "CT", "FRACTURE"),
    ("AI VCF SCREENING - FALSE POSITIVE REGISTER (ENTRY)", "REGISTER", "FRACTURE"),
    ("AUTOMATED VERTEBRAL FRACTURE DETECTION - OsteoSight CT v2.4 (CE class IIa)", "CT", "FRACTURE"),
    # a haemangioma's signal and the muscles' oedema are no marrow oedema
    ("Typical vertebral body hemangioma in T10 (T1 and T2 hyperintense).", "MRI THORACIC SPINE", "OEDEMA"),
    ("Paraspinal soft tissues: small amount of edema in the left posterior intercostal and paraspinal muscles.",
     "MRI THORACIC SPINE", "OEDEMA"),
    ("L2-L4: Right transverse process fractures with oedema in the adjacent right psoas and quadratus lumborum.",
     "MRI LUMBAR SPINE", "OEDEMA"),
    # posterior elements and an endplate explained
    ("The only fractures on the CT are healed left L2 and L3 transverse process fractures from a 2019 collision.",
     "LETTER", "FRACTURE"),
    ("Spine cleared - PLC intact; TP/SP fractures stable.", "NOTE", "FRACTURE"),
    ("Superior endplate depression at L3 with a well-corticated margin in keeping with a Schmorl's node.",
     "CT ABDOMEN", "FRACTURE"),
    # a CT's phase and its chest, abdomen and pelvis
    ("Technique: Non-contrast head and C-spine. Portal venous CAP with thin-section spine reformats.", "CT TRAUMA",
     "INFECTION"),
    # latent tuberculosis and a TB screen
    ("QuantiFERON-TB Gold negative; latent TB screen negative; TB symptom screen negative.", "NOTE", "INFECTION"),
    ("Primary sclerosing cholangitis on ursodeoxycholic acid.", "NOTE", "INFECTION"),
    ("Interstitial cystitis, on amitriptyline.", "NOTE", "INFECTION"),
    ("Neutropenic sepsis precautions explained.", "NOTE", "INFECTION"),
])
def test_services_variants_and_look_alikes_are_no_mentions(extractor, text, title, concept):
    assert not has(extractor, text, concept, title), text


def test_guards_of_the_look_alikes(extractor):
    # the marrow's oedema beside the muscles'; a fracture of the body beside a process's; a wedge fracture named
    text = "L1 superior endplate fracture with marrow oedema. Paraspinal muscle oedema at L1."
    assert [m["lexical_variant"] for m in find(extractor.mentions(text, "MRI SPINE"), "OEDEMA")] == ["marrow oedema"]
    assert has(extractor, "CT: acute L1 compression fracture and left L2 transverse process fracture.", "FRACTURE")
    assert one(extractor, "Genant grade 1 wedge fracture versus physiological wedging of T7.", "FRACTURE",
               "VFA")["levels"] == ["T7"]
    # the radiologist's line under the software's; a name not introduced as a relative's
    text = "  Algorithm output: compression fracture, Genant 1\n  Radiologist: L1 compression fracture, confirmed."
    assert [(m["uncertain"], m["levels"]) for m in find(extractor.mentions(text, "REGISTER"), "FRACTURE")] == \
        [(True, []), (False, ["L1"])]
    assert not one(extractor, "Rachel's VWD was diagnosed in 2019.", "COAGULOPATHY", "NOTE")["family"]


@pytest.mark.parametrize("text, needle, attrs", [
    # infections SPEC names by example, and the abbreviations and drugs writers use
    ("Prov. Dx: ? Pott's spine D11-D12 with early neurodeficit.", "Pott", dict(uncertain=True, scope="local")),
    ("Impression: smear-positive pulmonary tuberculosis, cavitary.", None, dict(scope="systemic")),
    ("Septic shock 2/2 ascending cholangitis.", "cholangitis", dict(negated=False)),
    ("1. Acute cystitis / UTI, nitrofurantoin.", "cystitis", dict(negated=False)),
    ("Bronchopneumonia on CXR, IV co-amoxiclav 1.2 g TDS.", "co-amoxiclav", dict(scope="systemic")),
    ("Infective exacerbation of COPD, on doxycycline.", None, dict(negated=False)),
    ("Sepsis 6 completed. Pip-taz + stat gentamicin given.", "Pip-taz", dict(negated=False)),
    ("Renal US: no hydronephrosis or abscess.", "abscess", dict(negated=True)),
    ("Small ventral epidural abscess at L3/4.", None, dict(scope="local", levels=["L3", "L4"])),
    ("Koch's to be r/o.", None, dict(uncertain=True)),
    ("INDICATION: Screening for pulmonary tuberculosis.", None, dict(uncertain=True)),
    # hypothetical: instructions, advice, examples, wishes, rates in general, consent's risks
    ("- Post-SAE fever or LUQ pain: low threshold for CT - splenic abscess / infarction", "abscess",
     dict(hypothetical=True)),
    ("Smoker - advised re wound infection and non-union risk.", None, dict(hypothetical=True)),
    ("Ceiling of care: treatment of reversible problems (e.g. oral antibiotics for a UTI).", None,
     dict(hypothetical=True)),
    ("Would want oral antibiotics for a symptomatic infection; not for transfer.", None, dict(hypothetical=True)),
    ("Risks outlined to Eileen today (cement leak, bleeding, infection, new fractures at adjacent levels).", None,
     dict(hypothetical=True)),
    ("Educated on signs of infection at the puncture site.", None, dict(hypothetical=True)),
    # guard: signs seen
    ("Wound shows signs of infection.", None, dict(hypothetical=False, negated=False)),
])
def test_infections_writers_mark_and_what_only_may_happen(extractor, text, needle, attrs):
    assert_attrs(one(extractor, text, "INFECTION", "NOTE", needle), attrs, text)


def test_a_generic_rate_and_an_epidural_phlegmon(extractor):
    found = find(extractor.mentions("Up to 10% of calcaneal fractures have a thoracolumbar fracture.", "NOTE"),
                 "FRACTURE")
    assert found and all(m["hypothetical"] for m in found)
    text = "Small ventral epidural phlegmon at L3/4."
    assert has(extractor, text, "EPIDURAL_DISEASE", "MRI SPINE") and not has(extractor, text, "INFECTION", "MRI SPINE")


@pytest.mark.parametrize("text, date, attrs", [
    # an episode over: its days before it, its month after it, "resolved" before it, a clause that it was treated
    ("Recap: admitted 11/08-15/08 with Staph. epidermidis port-associated bacteraemia (2/2 port sets).",
     "2025-08-26", dict(historical=True)),
    ("Course of co-amoxiclav 21/02-26/02 for a chest infection (GP), with poor oral intake.", "2025-03-17",
     dict(historical=True)),
    ("She had a chest infection in May.", "2025-06-24", dict(historical=True)),
    ("Impression:\n1. Resolved right lower lobe pneumonia. No underlying lesion.", "2025-03-10",
     dict(corrected="resolved")),
    ("You mentioned a tooth abscess in January, which your dentist treated.", "2025-02-20", dict(corrected="treated")),
    ("INDICATION: Diverticular abscess s/p perc drain. Drain check prior to pull.", "2025-03-31",
     dict(corrected="treated")),
    # ... and an incision and drainage's "D" is no dorsal level
    ("R thigh abscess s/p I&D 2/28.", "2025-03-31", dict(corrected="treated", levels=[])),
    # a day of a list of records, its label after it
    ("REVIEW OF MEDICAL RECORDS (chronological)\n02/07/2025 Dr. Wierzbicki (PCP, non-industrial): cystitis, "
     "nitrofurantoin x 5\ndays; no back complaints recorded.", "2025-03-11", dict(historical=True)),
    # guards: a stay that ends today, a course still going, a month the note is in, one since a month
    ("Admitted 20/08-26/08 with pneumonia.", "2025-08-26", dict(historical=False)),
    ("Admitted 11/08-15/08 with pneumonia, discharged on oral amoxicillin which continues.", "2025-08-26",
     dict(historical=False)),
    ("Pneumonia in June, still on amoxicillin.", "2025-06-24", dict(historical=False)),
    ("Discitis since May.", "2025-06-24", dict(historical=False)),
    ("Her fever resolved after IV ceftriaxone for pneumonia.", "2025-06-24", dict(corrected="")),
    ("Her fever resolved after IV ceftriaxone for pneumonia.", "2025-06-24", dict(corrected="resolved")),
])
def test_an_infection_s_episode_over(extractor, text, date, attrs):
    # "resolved" reads back to the fever, not on to what it resolved after
    needle = ("fever" if attrs["corrected"] else "pneumonia") if "fever resolved" in text else None
    found = find(extractor.mentions(text, "NOTE", date), "INFECTION", needle)
    assert_attrs(found[-1], attrs, text)


def test_the_infection_the_note_has_named_is_that_episode(extractor):
    text = "Admission in January with pneumonia - fully recovered.\nHe had put it down to the pneumonia and coughing."
    assert all(m["historical"] for m in find(extractor.mentions(text, "GP LETTER", "2025-03-18"), "INFECTION"))
    # guard: a current pneumonia beside an old one
    text = "Previous pneumonia 2019. Now RLL pneumonia. The pneumonia is improving on IV co-amoxiclav."
    found = find(extractor.mentions(text, "NOTE", "2025-03-18"), "INFECTION", "pneumonia")
    assert [m["historical"] for m in found] == [True, False, False], text


@pytest.mark.parametrize("text, attrs", [
    # a level's wedge, as writers mark it
    ("Mild old T11 wedge. Pain 6/10 on walking.", dict(levels=["T11"], acuity="chronic")),
    ("T12: mild anterior wedging, no marrow edema, chronic.", dict(levels=["T12"])),
    ("L2 wedge is old and not the pain generator.", dict(levels=["L2"], acuity="chronic")),
    # guard: one span for a wedge deformity
    ("Mild chronic anterior wedge deformity of L4 without marrow edema.", dict(levels=["L4"], acuity="chronic")),
    # another reading weighed after it
    ("1. Subtle L3 superior endplate concavity -- acute compression fracture vs Schmorl's node.",
     dict(uncertain=True, levels=["L3"])),
    ("Genant grade 1 wedge fracture versus physiological wedging of T7.", dict(uncertain=True)),
    # guards: a comparison and an age after "vs" are no other reading
    ("New L1 fracture vs prior study.", dict(uncertain=False, acuity="acute")),
    ("L1 fracture, acute vs chronic.", dict(uncertain=False, acuity="indeterminate")),
    # an appearance the image made
    ("The apparent height loss at L2 on the sagittal reformats is a stair-step\nrespiratory motion artefact.",
     dict(negated=True)),
])
def test_wedges_alternatives_and_artefacts(extractor, text, attrs):
    assert_attrs(one(extractor, text, "FRACTURE", "CT SPINE"), attrs, text)


@pytest.mark.parametrize("text", [
    "Mild physiologic wedging of T11 and T12.",
    "Right upper lobe wedge resection 2019 for a T1 adenocarcinoma.",
    "The radiologist confirmed normal variants (a limbus vertebra at L4 and natural wedge shape at T12).",
    "Conclusion:\nDevelopmental (Scheuermann) wedging at T7-T9.",
    "- Mild anterior wedging T6-T7 below the Genant threshold (grade 0).",
    "T7       0          mild anterior wedging, ratio 0.86 -- normal variation at mid-thoracic",
])
def test_wedges_that_are_no_fractures(extractor, text):
    assert not has(extractor, text, "FRACTURE", "CT SPINE"), text


@pytest.mark.parametrize("text, date, concept, needle, attrs", [
    # a problem heading whose course ends a few words on
    ("UTI: trimethoprim course completed 14/11, asymptomatic -- no further treatment.", "2025-11-15",
     "INFECTION", None, dict(corrected="treated")),
    ("She presented on 4/11 while finishing treatment for a urinary tract infection.", "2025-05-27",
     "INFECTION", None, dict(corrected="treated")),
    # a background heading of its own name
    ("Relevant background: dengue fever acquired in Bali, platelets down to 19, now recovering.", "2025-04-08",
     "INFECTION", None, dict(historical=True)),
    # an earlier stay and what it was for
    ("30-day readmission flag: YES - prior discharge 10/09/2025 (E. coli sepsis).", "2025-11-08",
     "INFECTION", None, dict(historical=True)),
    ("C2 complicated by febrile neutropenia (admitted 14-18/04/2025, cultures negative).", "2025-06-18",
     "INFECTION", None, dict(historical=True)),
    ("5. Urosepsis (E. coli) July 2025.", "2025-09-10", "INFECTION", None, dict(historical=True)),
    ("Admitted 21/07-25/07 with febrile neutropenia and E. coli bacteraemia (line not implicated).", "2025-08-12",
     "INFECTION", "bacteraemia", dict(historical=True)),
    ("Admitted Jan with LLL pneumonia. Confirm resolution.", "2025-02-20", "INFECTION", None, dict(historical=True)),
    # a child's illness in an adult's history
    ("Risk factors: febrile convulsions aged 2 (one simple episode). No head injury.", "2025-03-27",
     "INFECTION", None, dict(historical=True)),
    ("Childhood febrile seizures.", "2025-03-27", "INFECTION", None, dict(historical=True)),
    ("Meningitis at age 4, no sequelae.", "2025-03-27", "INFECTION", None, dict(historical=True)),
    # a cancer over: in remission, excised years ago
    ("B: COPD, AF on warfarin, prostate Ca in remission. For CPR.", "2025-03-27", "MALIGNANCY", None,
     dict(historical=True)),
    ("f) Basal cell carcinoma, left temple, excised 2021, clear margins.", "2025-03-27", "MALIGNANCY", None,
     dict(historical=True)),
    # an illness one has recovered from
    ("No fever, sweats or weight loss. Otherwise fully recovered from dengue, energy back.", "2025-04-01",
     "INFECTION", "dengue", dict(corrected="resolved")),
    ("History: she has recovered well from the admission in July for febrile neutropenia with E. coli.",
     "2025-09-09", "INFECTION", None, dict(corrected="resolved")),
    ("Recovering from dengue - explained tiredness may last some weeks.", "2025-03-09", "INFECTION", None,
     dict(corrected="resolved")),
    # a fracture in general: what goes with one, what would be done with one
    ("Thin band of endplate sclerosis, which can be seen in\na healing fracture but is non-specific.", "2025-04-07",
     "FRACTURE", None, dict(hypothetical=True)),
    ("If recent, he may be a candidate for vertebroplasty; an old fracture would be managed conservatively.",
     "2025-04-08", "FRACTURE", None, dict(hypothetical=True)),
    # what a disease may become, and a test that could not tell
    ("Her daughter had read that Paget's can turn into a bone cancer.", "2025-03-27", "MALIGNANCY", None,
     dict(hypothetical=True)),
    ("T12 compression fracture. DECT is non-diagnostic for marrow oedema at T12 (equivocal).", "2025-04-07",
     "OEDEMA", None, dict(uncertain=True)),
    # guards: a stay or a month the note is in, an illness still going, an adult's age, a cancer not in remission
    ("Admitted Feb with LLL pneumonia, on IV co-amoxiclav.", "2025-02-20", "INFECTION", None,
     dict(historical=False)),
    ("C2 complicated by febrile neutropenia (admitted 14-18/06/2025, cultures negative).", "2025-06-18",
     "INFECTION", None, dict(historical=False)),
    ("5. Urosepsis (E. coli) August 2025, on IV gentamicin.", "2025-08-13", "INFECTION", None,
     dict(historical=False)),
    ("UTI: trimethoprim started today.", "2025-11-15", "INFECTION", None, dict(corrected="")),
    ("Still completing antibiotics for the pneumonia -- oral co-amoxiclav to complete 7 days.", "2025-11-15",
     "INFECTION", None, dict(corrected="")),
    ("Metastatic breast cancer, recovering from a right lower lobe pneumonia, still on antibiotics.", "2025-11-15",
     "INFECTION", None, dict(corrected="")),
    ("Pneumonia in a man aged 72, on IV co-amoxiclav.", "2025-03-27", "INFECTION", None, dict(historical=False)),
    ("Multiple myeloma, IgG kappa, not in remission, on daratumumab.", "2025-03-27", "MALIGNANCY", None,
     dict(historical=False)),
    ("An acute L1 fracture would be amenable to vertebroplasty.", "2025-04-08", "FRACTURE", None,
     dict(hypothetical=False, acuity="acute")),
    ("Marrow oedema is seen in the L1 body, in keeping with an acute fracture.", "2025-04-08", "FRACTURE", None,
     dict(hypothetical=False, acuity="acute")),
])
def test_episodes_over_and_their_dates(extractor, text, date, concept, needle, attrs):
    found = find(extractor.mentions(text, "NOTE", date), concept, needle)
    assert found, f"no {concept} in {text!r}"
    assert_attrs(found[0], attrs, text)


@pytest.mark.parametrize("text, aetiology", [
    # a cause word of a cancer asked about or past, or of another fracture, is not this fracture's
    ("3. T12 fracture. Bone profile, vit D, myeloma screen\n   (anaemia + fracture) sent.", ""),
    ("Personal history of malignant neoplasm of prostate (ICD-10-CM Z85.46)\n"
     "  Wedge compression fracture of T11-T12 vertebra, sequela (ICD-10-CM S22.080S)", ""),
    ("S22.080A Wedge compression fracture of T11-T12 vertebra, initial encounter\n"
     "    M81.0    Age-related osteoporosis without current pathological fracture", ""),
    # guards: a fracture's own cause word, a cancer affirmed beside it
    ("Acute L1 pathological fracture.", "malignant"),
    ("T10 pathological compression fracture from metastatic breast cancer.", "malignant"),
])
def test_a_cause_word_of_another_mention(extractor, text, aetiology):
    assert one(extractor, text, "FRACTURE", "NOTE", date="2025-07-05")["aetiology"] == aetiology, text


@pytest.mark.parametrize("text, concept, attrs", [
    # an injury's mechanical stability is no age
    ("A: Stable L2 A1 fracture. Non-operative. No brace.", "FRACTURE", dict(acuity="")),
    ("Per ortho spine stable fracture pattern, nonoperative; TLSO when out of bed.", "FRACTURE", dict(acuity="")),
    # guard: a fracture unchanged on imaging
    ("2. Stable mild T7 compression deformity.", "FRACTURE", dict(acuity="chronic")),
    # MRI sequences named after "Sag" are no levels
    ("Acute L1 compression fracture. Sequences: Sag T1, Sag T2, Ax T2.", "FRACTURE", dict(levels=["L1"])),
])
def test_stability_and_sequences(extractor, text, concept, attrs):
    assert_attrs(one(extractor, text, concept, "MRI SPINE"), attrs, text)


@pytest.mark.parametrize("text, concept", [
    ('Protocol: MSK "VCF / ?acute" protocol: Sag T1, Sag T2, Sag STIR (T6-S1).', "FRACTURE"),
    ("Slot: 14/10/2025 10:40 (MR1) - earliest, 13/10 list full with MSCC patients with deficits.", "EPIDURAL_DISEASE"),
])
def test_a_protocol_and_other_patients_are_no_findings(extractor, text, concept):
    assert not has(extractor, text, concept, "MRI REQUEST"), text


@pytest.mark.parametrize("text, found", [
    # osteoporosis is the disease, osteoporotic bones or a patient
    ("PMH: osteoporosis (alendronate).", ["osteoporosis"]),
    ("Diffuse osteoporotic bones. Exaggerated dorsal kyphosis.", ["osteoporotic"]),
    ("New upper lumbar pain in an osteoporotic pt - ?compression fracture vs muscular.", ["osteoporotic"]),
    ("Glucocorticoid-induced osteoporosis (GIOP), on zoledronate.", ["osteoporosis", "GIOP"]),
    ("History of osteoporsis.", ["osteoporsis"]),
    # not osteopenia, a T-score alone, nor 'osteoporotic' naming a fracture's cause
    ("DXA: osteopenia, L-spine T-score -2.1.", []),
    ("T-score -2.8 at the femoral neck.", []),
    ("Acute osteoporotic L1 compression fracture.", []),
    ("Osteoporotic vertebral fractures at T8 and T11.", []),
    ("?osteoporotic crush # thoracolumbar junction.", []),
])
def test_osteoporosis_is_the_disease(extractor, text, found):
    mentions = find(extractor.mentions(text, "CLINIC LETTER"), "OSTEOPOROSIS")
    assert [m["lexical_variant"] for m in mentions] == found, text


@pytest.mark.parametrize("text, concept, needle, historical", [
    # a past history's conditions that go on are current
    ("PMH: AF on apixaban, osteoporosis (alendronate), HTN, old T11 fracture.", "ANTICOAGULANT", None, False),
    ("PMH: AF on apixaban, osteoporosis (alendronate), HTN, old T11 fracture.", "OSTEOPOROSIS", None, False),
    ("78 y.o. female w/ hx of osteoporosis (on alendronate) and AF on warfarin.", "OSTEOPOROSIS", None, False),
    ("HPI: 67 y/o M with hx of AF on warfarin presents with cough.", "ANTICOAGULANT", None, False),
    ("Past medical history: ITP, hypertension.", "COAGULOPATHY", None, False),
    ("PMH: chronic low back pain 6/10, HTN.", "PAIN", None, False),
    # a cancer that is the note's problem, or still treated
    ("PMH: Multiple myeloma as above (dx 01/2025). HTN. T2DM.", "MALIGNANCY", None, False),
    ("PMH: AF, multiple myeloma on lenalidomide maintenance, HTN.", "MALIGNANCY", None, False),
    ("History of metastatic breast cancer on letrozole.", "MALIGNANCY", "cancer", False),
    # guards: episodes in a past history are over
    ("PMH: AF on apixaban, osteoporosis (alendronate), HTN, old T11 fracture.", "FRACTURE", None, True),
    ("PMH: pneumonia 2023, HTN.", "INFECTION", None, True),
    ("History of breast cancer 2015, treated.", "MALIGNANCY", None, True),
    ("PMH: prostate cancer (radical prostatectomy 2012).", "MALIGNANCY", None, True),
])
def test_what_a_past_history_names_that_goes_on(extractor, text, concept, needle, historical):
    assert one(extractor, text, concept, "CLINIC NOTE", needle)["historical"] is historical, text


@pytest.mark.parametrize("text, levels", [
    # a tumour's T stage is no vertebra
    ("1. Clinical stage T2, NX, MX transitional cell carcinoma of the urinary bladder.", []),
    ("His staging is T3 N2c M0 Stage IV invasive squamous cell carcinoma of the head and neck.", []),
    ("INDICATION: history of T4 supraglottic squamous cell carcinoma.", []),
    # guards: a metastasis or a tumour at a vertebra
    ("Metastasis at T3 with collapse.", ["T3"]),
    ("Lytic T2 lesion, biopsy: metastatic carcinoma.", ["T2"]),
])
def test_a_tumour_stage_is_no_level(extractor, text, levels):
    assert one(extractor, text, "MALIGNANCY", "CLINIC NOTE")["levels"] == levels, text


@pytest.mark.parametrize("text, attrs", [
    # a search for metastases that came back negative, or is yet to be done
    ("The patient had a metastatic workup, which was negative including a brain MRI and bone scan.",
     dict(negated=True)),
    ("Metastatic workup was negative and Cardiology felt he was at satisfactory risk.", dict(negated=True)),
    ("The patient's metastatic workup has otherwise been negative with MRI scan and CT scanning.",
     dict(negated=True)),
    ("Metastatic workup pending.", dict(hypothetical=True)),
    # guard: metastases the workup found
    ("Workup revealed multiple bone metastases.", dict(negated=False, hypothetical=False)),
])
def test_a_metastatic_workup(extractor, text, attrs):
    assert_attrs(one(extractor, text, "MALIGNANCY", "H&P"), attrs, text)


@pytest.mark.parametrize("text, section, uncertain", [
    # an imaging report whose line breaks an export flattened: its run-in headings still head sections
    ("INDICATION: Back pain. COMPARISON: None. FINDINGS: Mild wedge deformity of T12. IMPRESSION: Normal chest.",
     "findings", False),
    ("INDICATION: Back pain. Comparison: None. Findings: Mild wedge deformity of T12.", "findings", False),
    # in capitals, a heading after any word: no full stop closes the section before it
    ("INDICATION: XXXX-year-old male with chest pain COMPARISON: None IMPRESSION: Mild wedge deformity of T8.",
     "impression", False),
    ("COMPARISON: XXXX INDICATION: back pain FINDINGS: Mild compression deformity of L1.", "findings", False),
    # guards: the indication's own question, a heading word in a sentence
    ("INDICATION: ?T12 fracture. COMPARISON: None.", "indication", True),
    ("INDICATION: back pain; findings: compression fracture of T12.", "indication", True),
    ("INDICATION: back pain, as per Findings: compression fracture of T12.", "indication", True),
])
def test_run_in_headings_of_a_flattened_report(extractor, text, section, uncertain):
    assert_attrs(one(extractor, text, "FRACTURE", "XR CHEST"), dict(section=section, uncertain=uncertain), text)


def assert_wave_row(extractor, text, date, concept, needle, attrs):
    """A wave's trap row: the first ``concept`` mention (with ``needle``) has ``attrs``; none if ``attrs`` is None."""
    found = find(extractor.mentions(text, "CLINIC NOTE", date), concept, needle)
    if attrs is None:
        assert not found, text
    else:
        assert found, f"no {concept} in {text!r}"
        assert_attrs(found[0], attrs, text)


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # thirty-fourth wave: a line lock, a threshold, what a treatment is for, what he has not got
    ("Port flushed monthly with Hepsal (heparin sodium 50 units in 5 ml) by the CNS team.",
     "ANTICOAGULANT", None, None),
    ("Her Port-A-Cath was packed with heparin according to protocol.", "ANTICOAGULANT", None, None),
    ("Posaconazole, heparin-lock of PICC lumens per protocol.", "ANTICOAGULANT", None, None),
    ("However: thrombocytopenia below our threshold for transpedicular access (plt 50), with portal "
     "hypertension.", "COAGULOPATHY", "plt 50", dict(hypothetical=True)),
    ("I explained that it is a treatment for vertebral body fractures, which he does not have.",
     "FRACTURE", None, dict(negated=True, hypothetical=True)),
    ("Right T7/8 costovertebral joint: mild effusion and STIR hyperintensity of the articular margins -- "
     "active costovertebral arthropathy.", "OEDEMA", None, None),
    ("RADPEER score: 2\nTeaching point (general): a mild wedge fracture is favoured when there is endplate "
     "buckling.", "FRACTURE", None, dict(hypothetical=True)),
    ("She is frightened that this is the leukaemia coming back.", "MALIGNANCY", None, dict(uncertain=True)),
    ("He is anxious that this means the cancer is back, understandably with LFS.", "MALIGNANCY", None,
     dict(uncertain=True)),
    ("Second neoplasms: basal cell carcinoma of the scalp in the cranial field,\n   excised 03/2022, clear margins.",
     "MALIGNANCY", None, dict(historical=True)),
    ("CANCER PREDISPOSITION (TP53) MDT - OUTCOME FORM", "MALIGNANCY", None, None),
    ("Referrer: Cancer Genetics. Present: Dr Feld (sarcoma oncology), Ms Irwin.", "MALIGNANCY", None, None),
    ("VTE prophylaxis: enoxaparin NOT prescribed (platelets, recent haemoptysis).", "ANTICOAGULANT", None,
     dict(negated=True)),
    ("Explained: the MRI shows no fracture; the X-ray's\n\"fracture\" was the normal shape of her vertebrae.",
     "FRACTURE", None, dict(negated=True)),
    ("Reporter's response: will compare with neighbouring vertebrae and prior CT of the spine before "
     "suggesting a fracture.", "FRACTURE", None, dict(hypothetical=True)),
    # guards: heparin given, a platelet count, a treatment for her own fracture, an infection left
    # untreated
    ("UTI on dipstick, antibiotics not started.", "INFECTION", None, dict(negated=False)),
    ("Heparin 5000 units SC tds for VTE prophylaxis.", "ANTICOAGULANT", None, dict(negated=False)),
    ("Relevant results (02/10): Plt 47, INR 1.2.", "COAGULOPATHY", "Plt 47", dict(hypothetical=False)),
    ("Vertebroplasty is a treatment for her L1 fracture.", "FRACTURE", None, dict(hypothetical=False)),
    ("STIR hyperintensity of the T12 vertebral body.", "OEDEMA", None, dict(levels=["T12"])),
])
def test_thirty_fourth_wave(extractor, text, concept, needle, attrs):
    assert_wave_row(extractor, text, None, concept, needle, attrs)


@pytest.mark.parametrize("text, concept, attrs", [
    # from MTSamples and TREC: a dash and a capital start a list item, which a negation does not leave
    ("Past Medical History:\n   -Hep C, never treated\n   -Infectious endocarditis in her 20s, 6 wks of abx",
     "INFECTION", dict(negated=False, historical=True)),
    ("Li-Fraumeni syndrome; osteosarcoma of the femur diagnosed last month.", "MALIGNANCY",
     dict(negated=False, historical=False)),
    # guard: a hyphenated word broken at a line's end is no item
    ("No evidence of post-\noperative infection.", "INFECTION", dict(negated=True)),
])
def test_list_items_and_compound_cancers(extractor, text, concept, attrs):
    assert_attrs(one(extractor, text, concept, "H&P"), attrs, text)


@pytest.mark.parametrize("text, date, concept, needle, attrs", [
    # thirty-fifth wave: a differential's list goes past a cue inside it; what is on the differential,
    # the main concern; a question about a fracture's age
    ("DDx discitis / vertebral osteomyelitis (less likely - no spinal tenderness)\nand osteoporotic vertebral "
     "fracture (post-sleeve, low vit D) - XR reassuring.", None, "FRACTURE", None, dict(uncertain=True)),
    ("Highest concern is lymphoma; disseminated MAC or TB also on the differential.", None, "INFECTION", "TB",
     dict(uncertain=True)),
    ("Discitis remains on the differential.", None, "INFECTION", None, dict(uncertain=True)),
    ("Highest concern is an HIV-associated lymphoma.", None, "MALIGNANCY", None, dict(uncertain=True)),
    ('"I don\'t want\nto have a spinal fracture and not know it."', None, "FRACTURE", None, dict(uncertain=True)),
    ("The MRI is the only way to tell whether the T7 fracture is recent or old.", None, "FRACTURE", None,
     dict(hypothetical=False, uncertain=False, acuity="indeterminate")),
    # a cancer named before its history, or dated after its descriptors or a hard wrap
    ("MRI will exclude metastasis given breast cancer history.", None, "MALIGNANCY", "cancer",
     dict(historical=True)),
    ("HTN, HLD, prostate Ca s/p\nRP 2018 (PSA undetectable), and chronic LBP.", "2025-06-10", "MALIGNANCY", None,
     dict(historical=True)),
    ("Osteosarcoma L distal femur, 09/2011 (aged 13) - chemotherapy and limb salvage.", "2025-06-10",
     "MALIGNANCY", None, dict(historical=True)),
    ("Hodgkin lymphoma, stage IIA, nodular sclerosis, 1995.", "2025-06-10", "MALIGNANCY", None,
     dict(historical=True)),
    # someone else: a teammate; a relative whose story runs past six words, with no word for the patient
    ("His teammate had a T12 fracture last year.", None, "FRACTURE", None, dict(family=True)),
    ('He worries he has "a broken spine" -- his uncle in Kumasi was paralysed after a\nspinal fracture from a fall.',
     None, "FRACTURE", None, dict(family=True)),
    ("She is worried: her flight lead ejected over the range in 2023 and had T7 and T8\ncompression fractures.",
     None, "FRACTURE", None, dict(family=True)),
    # an alternative; a fracture history's label; whether a fracture is recent or old
    ("Main concern is cord compression from EMH, with or without a vertebral fracture; abscess less likely.",
     None, "FRACTURE", None, dict(uncertain=True, negated=False)),
    ("Fracture history: L distal radius buckle fracture age 9. No other.", None, "FRACTURE", None, None),
    # radiotherapy fraction 3 of 5, its regimen written before it; muscle signal
    ("Urgent RT T8-T10, 20 Gy in 5 #: started 02/11, # 3/5 today.", None, "FRACTURE", None, None),
    ("Mild STIR hyperintensity within the right erector spinae at T12-L1, consistent with muscle strain.", None,
     "OEDEMA", None, None),
    # guards: the differential's head ends at its sentence; a cancer still treated or spread; a
    # condition's history that goes on; a fracture's own bracket keeps its level
    ("DDx discitis. Acute L1 osteoporotic compression fracture.", None, "FRACTURE", None, dict(uncertain=False)),
    ("Breast cancer, ER+, on letrozole, 2019.", "2025-06-10", "MALIGNANCY", None, dict(historical=False)),
    ("Prostate cancer, Gleason 7, 2018, on ADT.", "2025-06-10", "MALIGNANCY", None, dict(historical=False)),
    ("Breast cancer, metastatic to bone, 2019.", "2025-06-10", "MALIGNANCY", "cancer", dict(historical=False)),
    ("Osteoporosis history: alendronate since 2019.", None, "OSTEOPOROSIS", None, dict(historical=False)),
    ("MRI to determine whether there is a fracture.", None, "FRACTURE", None, None),
    ("Her daughter was present when the MRI showed her L1 fracture.", None, "FRACTURE", None, dict(family=False)),
    ("He does not want to have kyphoplasty for the L1 fracture.", None, "PRIOR_AUGMENTATION", None,
     dict(uncertain=False)),
    ("His wife reports the back pain started after a fall and MRI showed an L1 fracture.", None, "FRACTURE", None,
     dict(family=False)),
    ("Her daughter had read that Paget's can turn into a bone cancer; I explained.", None, "MALIGNANCY", None,
     dict(family=False)),
    ("The MRI intended to show whether the fracture was acute (and so whether vertebroplasty might be offered) "
     "was not tolerated.", None, "FRACTURE", None, dict(hypothetical=True)),
    ("L1 burst fracture with or without retropulsion, no cord compression.", None, "EPIDURAL_DISEASE", None,
     dict(negated=True, uncertain=False)),
    ("Pathologic compression fracture of T9 (~40% height loss) due to an infiltrative marrow lesion, with "
     "additional lesions at T6 and T11.", None, "FRACTURE", "height loss", dict(levels=["T9"])),
    ("Wedge fracture T12 (mild) and L1 lesion.", None, "FRACTURE", None, dict(levels=["T12"])),
    ("STIR hyperintensity of the T12 vertebral body.", None, "OEDEMA", None, dict(levels=["T12"])),
    ("Acute L2 # seen today.", None, "FRACTURE", None, dict(levels=["L2"])),
])
def test_thirty_fifth_wave(extractor, text, date, concept, needle, attrs):
    assert_wave_row(extractor, text, date, concept, needle, attrs)


@pytest.mark.parametrize("text, date, concept, needle, attrs", [
    # a drug the patient is allergic to is not taken, nor an antibiotic an infection's
    ("ALLERGIES: Heparin Agents / Penicillins\nMEDS: paracetamol", None, "ANTICOAGULANT", None, dict(negated=True)),
    ("- Allergies .............................. piperacillin-tazobactam (rash), tobramycin", None, "INFECTION",
     None, dict(negated=True)),
    ("Allergic to enoxaparin (rash).", None, "ANTICOAGULANT", None, dict(negated=True)),
    # ... not "none", and not past a medication list's label
    ("Allergies: none. Apixaban 5 mg bd.", None, "ANTICOAGULANT", None, dict(negated=False)),
    ("ALLERGIES: NKDA MEDICATIONS: Coumadin 5 mg daily.", None, "ANTICOAGULANT", None, dict(negated=False)),
    ("ALLERGIES: Penicillin MEDICATIONS: Coumadin 5 mg daily.", None, "ANTICOAGULANT", None, dict(negated=False)),
    # a family history heading qualified by a bracket
    ("Family history (pedigree updated, maternal side):\n- Maternal aunt Pauline: breast cancer aged 45; in her "
     "last year she had crush fractures in her spine from the cancer in her bones.", None, "FRACTURE", None,
     dict(family=True)),
    # the age of a fracture not told, with no earlier study: the fracture is not denied
    ("In the absence of previous imaging the age of this T11 fracture cannot be determined.", None, "FRACTURE", None,
     dict(negated=False)),
    ("These features do not reliably date the T11 fracture: it may be subacute, or remote.", None, "FRACTURE",
     None, dict(negated=False, acuity="indeterminate")),
    ("We cannot tell from the VFA whether the T8 fracture is recent or old.", None, "FRACTURE", None,
     dict(negated=False, uncertain=False)),
    # what is not indicated for a finding: the fracture is not denied, the procedure stays planned, a
    # drug is not given; a verdict and its reasons after a colon
    ("IR: vertebroplasty is not indicated for healed fractures without oedema.", None, "FRACTURE", None,
     dict(negated=False, acuity="healed")),
    ("IR: vertebroplasty is not indicated for healed fractures without oedema.", None, "PRIOR_AUGMENTATION", None,
     dict(negated=False, hypothetical=True)),
    ("Heparin bridging not indicated for HM3 without prior pump thrombosis.", None, "ANTICOAGULANT", None,
     dict(negated=True)),
    ("Vertebral augmentation is for painful recent fractures, so it is not indicated for her.", None, "FRACTURE",
     None, dict(negated=False, hypothetical=True)),
    ("- Not a surgical candidate: ECOG 2, multilevel disease, ESCC 2 without deficit.", None, "EPIDURAL_DISEASE",
     None, dict(negated=False)),
    ("2. Vertebroplasty / kyphoplasty NOT appropriate: burst fracture with posterior wall breach and retropulsion.",
     None, "RETROPULSION", None, dict(negated=False)),
    ("2. Vertebroplasty / kyphoplasty NOT appropriate: burst fracture with posterior wall breach and retropulsion.",
     None, "PRIOR_AUGMENTATION", "kyphoplasty", dict(negated=False, hypothetical=True)),
    # an interaction denied; the patient and a relative as listeners
    ("Doxycycline has no relevant interaction with co-careldopa, rasagiline or clopidogrel.", None,
     "ANTICOAGULANT", None, dict(negated=False)),
    ("Explained to patient and son (Marcus) that we are worried the cancer in the spine may be pressing on the "
     "cord.", None, "MALIGNANCY", None, dict(family=False)),
    # a question after a full stop starts its own sentence; not one about the age of what came before
    ("Back pain since a coughing fit, not settling. ?rib # ?vertebral #", None, "FRACTURE", None,
     dict(negated=False, uncertain=True)),
    ("No neuro deficit. ?pathological fracture ?MSCC", None, "EPIDURAL_DISEASE", None,
     dict(negated=False, uncertain=True)),
    ("Clinical notes: T12 crush # on XR 16/06. ?acute.", None, "FRACTURE", None, dict(acuity="indeterminate")),
    ("Clinical details: L4 collapse on XR. ?osteoporotic ?infection.", None, "FRACTURE", None,
     dict(aetiology="osteoporotic")),
    # a checklist row answered N, its items set apart by spaces
    ("- Checklist: Fever N   Cough N   Urinary symptoms N", None, "INFECTION", None, dict(negated=True)),
    # the test, not the disease
    ("Blood tests: von Willebrand screen, factor VIII and factor IX levels are normal.", None, "COAGULOPATHY",
     None, None),
    # a condition posited to explain something, not the patient's
    ("Until these are back we cannot exclude it, but a bleeding disorder would not explain the fractures.", None,
     "COAGULOPATHY", None, dict(hypothetical=True)),
    ("An infection would account for the fever and the raised CRP.", None, "INFECTION", None,
     dict(hypothetical=True)),
    ("She has a UTI and will need antibiotics.", None, "INFECTION", None, dict(hypothetical=False)),
    # a row labelled by its level is a sentence of its own; wedging a normal kyphosis explains
    ("LUMBAR SPINE\n  L1: excluded - cement\n  L2: excluded - fracture\n  L3-L4: BMD 0.842 g/cm2", None, "FRACTURE",
     None, dict(levels=["L2"])),
    ("Bones: Mild anterior wedging of T6, T7 and T8, within the range of a normal thoracic kyphosis; no vertebral "
     "compression fracture.", None, "FRACTURE", "wedging", None),
    # guards: the relatives' own; the disease; a question that stays one
    ("His wife and son both had vertebral fractures.", None, "FRACTURE", None, dict(family=True)),
    ("Known von Willebrand disease type 1.", None, "COAGULOPATHY", None, dict(negated=False)),
    ("We cannot tell whether there is a fracture at T8.", None, "FRACTURE", None,
     dict(negated=False, hypothetical=True)),
])
def test_thirty_sixth_wave(extractor, text, date, concept, needle, attrs):
    assert_wave_row(extractor, text, date, concept, needle, attrs)


@pytest.mark.parametrize("text, date, concept, needle, attrs", [
    # what a procedure is for in general, not this patient's fracture
    ("She asked about the cement injection for her spine. I explained this is only considered for painful recent "
     "vertebral fractures.", None, "FRACTURE", None, dict(hypothetical=True)),
    # a report quoted with its date, in quotation marks
    ('2019: motorcycle collision. CT lumbar spine 08/03/2019: "acute L2 superior endplate compression fracture, '
     'no retropulsion." Treated with TLSO.', "2025-06-18", "FRACTURE", None, dict(historical=True)),
    # a coded diagnosis whose subtype is a process; the sites of process fractures just named
    ('Diagnosis: Closed fractures of the left L2 and L3 transverse processes (ACC diagnosis "Fracture of lumbar '
     'vertebra -- transverse process").', None, "FRACTURE", None, None),
    ("Left L2 and L3 transverse process fractures with STIR hyperintensity in the fracture sites.", None, "FRACTURE",
     None, None),
    # guards: a body fracture whose posterior elements are named after it; the site of a body fracture
    ("Acute L1 compression fracture - posterior elements intact.", None, "FRACTURE", None, dict(levels=["L1"])),
    ("L1 burst fracture - posterior elements involved.", None, "FRACTURE", None, dict(levels=["L1"])),
    ("L1 burst fracture with STIR signal at the fracture site.", None, "FRACTURE", "fracture",
     dict(levels=["L1"])),
    # the winking owl sign; an insurer's decision
    ("Conclusion:\n1. T11 vertebral collapse with a pedicle that is not seen: concerning for a pathological "
     "fracture.", None, "FRACTURE", "collapse", dict(negated=False, levels=["T11"])),
    ("2. You are not entitled to benefits for the pathological fracture of T11 or the related treatment.", None,
     "FRACTURE", None, dict(negated=False)),
    # a question, or a condition, about the age of a fracture already found
    ("I cannot tell from the VFA whether the T7 fracture and T8 fracture are recent or old.", None, "FRACTURE", None,
     dict(hypothetical=False, acuity="indeterminate")),
    ("If the age of the L2 fracture matters clinically, MRI with STIR is advised.", None, "FRACTURE", None,
     dict(hypothetical=False)),
    ("Two vertebral fractures of indeterminate age. If dating the L2 fracture would change management, MRI is "
     "needed.", None, "FRACTURE", "fracture", dict(hypothetical=False)),
    ("MRI to see whether there is a new or old fracture at L1.", None, "FRACTURE", None, dict(hypothetical=True)),
    # a differential listed under its heading, an item wrapped onto an indented line
    ("DDx:\n1. Pre-eruptive shingles (zoster sine herpete until proven otherwise - dermatomal,\n   allodynia)\n"
     "2. Osteoporotic vertebral fracture - steroid exposure, but no bony tenderness", None, "FRACTURE", None,
     dict(uncertain=True)),
    # an abscess drained is treated; not one to be drained
    ("Diagnoses:\n1. Crohn's disease\n   - Perianal abscess drained, loose seton 31/01/2025", None, "INFECTION", None,
     dict(corrected="treated")),
    ("In January he developed a perianal abscess,\nwhich Ms Odunsi's team drained on 31/01.", None, "INFECTION", None,
     dict(corrected="treated")),
    ("Psoas abscess to be drained by IR tomorrow.", None, "INFECTION", None, dict(corrected="")),
    ("He has a psoas abscess, which Dr Patel has not drained yet.", None, "INFECTION", None, dict(corrected="")),
    # a relative clause, then the relative's own clause to the end of the sentence
    ("She is very worried, and her mother, who is 58, has osteoporosis and has already had two spinal crush "
     "fractures.", None, "FRACTURE", None, dict(family=True)),
    ("Her mother, who is 80 and lives with her, says she fell and has had a T12 compression fracture since.", None,
     "FRACTURE", None, dict(family=False)),
    ("Callum asked whether he will need the same treatment as his sister, whose vertebral fracture was treated "
     "with vertebroplasty last year.", None, "FRACTURE", None, dict(family=True)),
    # IF, intestinal failure
    ("PMH: as per IF letter 02/05/2025 - Crohn's, SBS, HPN,\nSVC thrombosis on warfarin, osteoporosis.", None,
     "ANTICOAGULANT", None, dict(hypothetical=False)),
    ("If AF recurs, start apixaban.", None, "ANTICOAGULANT", None, dict(hypothetical=True)),
    # the reasons a procedure is not suitable are findings
    ("NOT suitable for vertebroplasty or kyphoplasty at T11: posterior wall breached with a retropulsed fragment "
     "and epidural tumour.", None, "RETROPULSION", None, dict(hypothetical=False, negated=False)),
    ("NOT suitable for vertebroplasty or kyphoplasty at T11: posterior wall breached with a retropulsed fragment "
     "and epidural tumour.", None, "PRIOR_AUGMENTATION", None, dict(hypothetical=True)),
])
def test_thirty_seventh_wave(extractor, text, date, concept, needle, attrs):
    assert_wave_row(extractor, text, date, concept, needle, attrs)


@pytest.mark.parametrize("text, date, concept, needle, attrs", [
    # a pars fracture written with its element, or glossed in brackets after it
    ("Conclusion:\n1. Acute bony stress injury of the left L4 pars interarticularis with an incomplete fracture\n"
     "   (early spondylolysis).", None, "FRACTURE", None, None),
    ("SPECT/CT: a non-corticated lucent line involving the inferior half of the pars (incomplete\nfracture, no "
     "sclerosis).", None, "FRACTURE", None, None),
    # guards: a body fracture that reaches a posterior element, or has one named before it
    ("L1 burst fracture involving both pedicles with a retropulsed fragment.", None, "FRACTURE", None,
     dict(levels=["L1"])),
    ("Pedicle screws at L2-L4, with an acute L1 fracture above the construct.", None, "FRACTURE", None,
     dict(levels=["L1"], acuity="acute")),
    # an infection weeks ago, or in brackets after the days it lasted
    ("Pneumonia earlier this month: finished amoxicillin 09/07, cough gone.", "2025-07-24", "INFECTION", None,
     dict(historical=True)),
    ("UTI three weeks ago, treated by the GP.", "2025-07-24", "INFECTION", None, dict(historical=True)),
    ("Training log: nil 27/06-12/07 (pneumonia), then 6 sessions.", "2025-07-24", "INFECTION", None,
     dict(historical=True)),
    # guards: one whose treatment goes on; days that have not ended
    ("Pneumonia earlier this month, still on amoxicillin.", "2025-07-24", "INFECTION", None, dict(historical=False)),
    ("Admitted 20/07-27/07 (pneumonia).", "2025-07-24", "INFECTION", None, dict(historical=False)),
    # a symptom screen's dash answer
    ("Symptom screen (via interpreter):\n  Cough - no.  Fever - no.  Night sweats - no.", None, "INFECTION", None,
     dict(negated=True)),
    ("Fever - nil; rigors - nil.", None, "INFECTION", None, dict(negated=True)),
    ("Fever - no\nCough - no\n", None, "INFECTION", None, dict(negated=True)),
    # guards: a dash before more words, or before a wrapped line
    ("Fever - no source found, cultures pending.", None, "INFECTION", None, dict(negated=False)),
    ("Chronic healed T12 osteoporotic compression fracture - no\n   new fracture on XR 09/04.", None, "FRACTURE",
     "compression", dict(negated=False)),
    # old healed TB; TB services and preventive treatment
    ("CXR: calcified granuloma, appearances of old healed primary TB. No active disease.", None, "INFECTION", None,
     dict(corrected="resolved")),
    ("Dr J. Whitcombe, Consultant Respiratory Physician, TB Lead", None, "INFECTION", None, None),
    ("Seen with S. Mbeki, TB CNS.", None, "INFECTION", None, None),
    ("Old D12 injury 2016. On TB preventive treatment.", None, "INFECTION", None, None),
    # guard: the disease
    ("Smear-positive pulmonary TB, on RHZE since 02/06.", None, "INFECTION", None, dict(family=False)),
    # whose a finding is, in brackets after it; a case the patient was in contact with
    ("Breast cancer (mother), osteoporosis (sister).", None, "OSTEOPOROSIS", None, dict(family=True)),
    ("Clinical details: household contact of smear-positive pulmonary TB (son). Asymptomatic.", None, "INFECTION",
     None, dict(family=True)),
    ("FH: haemophilia B (father and son affected).", None, "COAGULOPATHY", None, dict(family=True)),
    # guard: a bracket that says more
    ("Osteoporosis (wife reports two falls this year).", None, "OSTEOPOROSIS", None, dict(family=False)),
    # a results heading ends the family history above it
    ("Family history: paternal grandmother osteoporosis; father fractured his hip at 70.\n"
     "Bloods today: Ca 2.34, Plt 31, Hb 133.", None, "COAGULOPATHY", None, dict(family=False)),
    # what a finding would mean; what a procedure would only be considered for
    ("I have requested an MRI with STIR: marrow oedema at T9 would mean a recent fracture, its absence an old one.",
     None, "OEDEMA", None, dict(hypothetical=True)),
    ("Vertebroplasty is seldom used at his age and would only be considered for a\npainful recent fracture that "
     "does not settle.", None, "FRACTURE", None, dict(hypothetical=True)),
    # guard: this patient's fracture
    ("Kyphoplasty would be considered for the L1 fracture.", None, "FRACTURE", None, dict(hypothetical=False)),
    # a condition on the age of a fracture already found leaves its age open
    ("I have requested MRI to date the T9 fracture - if acute she may be a candidate for vertebroplasty.", None,
     "FRACTURE", None, dict(acuity="", hypothetical=False)),
    ("MRI L-spine to age the L3 fracture: if it is recent and pain persists, refer IR.", None, "FRACTURE", None,
     dict(acuity="")),
    # guards: a fracture after "if acute", a condition itself; the fracture inside the condition
    ("If acute fracture on MRI, for vertebroplasty.", None, "FRACTURE", None, dict(hypothetical=True, acuity="acute")),
    ("L3 vertebral compression fracture, acuity unknown. If the fracture is acute and pain persists, he may be a "
     "candidate.", None, "FRACTURE", "fracture", dict(hypothetical=False, acuity="indeterminate")),
    ("If the L3 fracture is acute and pain persists, he may be a candidate.", None, "FRACTURE", None,
     dict(hypothetical=True, acuity="acute")),
    ("Re-refer if new or worsening back pain.", None, "PAIN", None, dict(hypothetical=True)),
])
def test_thirty_eighth_wave(extractor, text, date, concept, needle, attrs):
    assert_wave_row(extractor, text, date, concept, needle, attrs)


@pytest.mark.parametrize("text, date, concept, needle, attrs", [
    # a fear; one reading beside another; a story that would suit a finding
    ("Her mother's history makes Joanne anxious about a vertebral fracture herself.", None, "FRACTURE", None,
     dict(uncertain=True)),
    ("He is scared of another spinal fracture.", None, "FRACTURE", None, dict(uncertain=True)),
    ("The story could fit a recent T12 fracture but it can also be an old fracture from the 2019 ladder fall.",
     None, "FRACTURE", None, dict(uncertain=True)),
    ("The pain is new, but it can also be an old T9 fracture.", None, "FRACTURE", None, dict(uncertain=True)),
    ("This may also be an old T12 fracture from the fall.", None, "FRACTURE", None, dict(uncertain=True)),
    # guard: the fracture itself
    ("Scared of falling again. MRI: acute T12 fracture.", None, "FRACTURE", None, dict(uncertain=False)),
    # a film's projection
    ("The apparent wedging of T10 on the lateral radiograph was projectional.", None, "FRACTURE", None,
     dict(negated=True)),
    ("Apparent loss of height at T12 is due to patient rotation.", None, "FRACTURE", None, dict(negated=True)),
    # guard: a projection named, not blamed
    ("T10 wedging with 20% height loss on the lateral projection.", None, "FRACTURE", None, dict(negated=False)),
    # a consent's list after a colon
    ("Risks explained to patient (through interpreter): bleeding, infection, cement leakage.", None, "INFECTION",
     None, dict(hypothetical=True)),
    # an episode whose days have ended; a treatment put off for an infection weeks ago; an infection after a
    # journey in an earlier month
    ("Had a UTI 14-17/02, 3 days trimethoprim from GP, symptoms settled.", "2025-03-03", "INFECTION", None,
     dict(historical=True)),
    ("A:\n  Acute phase reaction (post-infusion fever and myalgia\n  04-05/03), settled.", "2025-03-06",
     "INFECTION", None, dict(historical=True)),
    ("3. Osteoporosis - first zoledronic acid deferred 20/01 because of a\n     chest infection; rebooked 04/03.",
     "2025-02-24", "INFECTION", None, dict(historical=True)),
    ("He had chest infection (pneumonia) after Umrah in February, admitted in your hospital.", "2025-04-20",
     "INFECTION", "pneumonia", dict(historical=True)),
    # guards: treatment going on, an episode ending today, a day put off days ago, an infection since a month
    ("Pneumonia 01-05/03, still on amoxicillin.", "2025-03-06", "INFECTION", None, dict(historical=False)),
    ("Pneumonia 01-06/03, cultures negative.", "2025-03-06", "INFECTION", None, dict(historical=False)),
    ("Zoledronate deferred 20/02 because of a chest infection.", "2025-02-24", "INFECTION", None,
     dict(historical=False)),
    ("Pneumonia since March, on antibiotics.", "2025-04-20", "INFECTION", None, dict(historical=False)),
    # a disc's height named after it
    ("Degenerative disc disease L3-S1 with desiccation and loss of height of the discs.", None, "FRACTURE", None,
     None),
    ("L4-5: loss of height of the L4-5 disc.", None, "FRACTURE", None, None),
    # guard: a vertebra's height
    ("40% loss of height of T12.", None, "FRACTURE", None, dict(levels=["T12"])),
    # a history heading with a long bracket after it
    ("FAMILY HISTORY (pedigree updated today, maternal side, XLH segregates):\n  II-2  mother Sandra, 66 - XLH "
     "(variant positive 2014). Two thoracic vertebral fractures 2019.", None, "FRACTURE", None, dict(family=True)),
    ("PAST HISTORY (from pt + paediatric letters scanned from Ysbyty Bro Morgannwg, 2004-2010)\n- Radiographs: "
     "multiple thoracic vertebral compression fractures T6-T9.", None, "FRACTURE", None, dict(historical=True)),
    # guard: a background heading's bracket tells this admission
    ("Background (from notes and team):\nAdmitted with septic shock from faecal peritonitis.", None, "INFECTION",
     None, dict(historical=False)),
    # a leaflet's gist after a colon
    ("DISCHARGE ADVICE\n  Acute phase reaction leaflet gone through: flu-like aches, headache and fever\n  in the "
     "first 1-3 days are common after a first dose.", None, "INFECTION", None, dict(hypothetical=True)),
    # guard: a leaflet given, and the note going on
    ("Osteoporosis leaflet given\nAcute L1 fracture, fever 38.5.", None, "INFECTION", None, dict(hypothetical=False)),
])
def test_thirty_ninth_wave(extractor, text, date, concept, needle, attrs):
    assert_wave_row(extractor, text, date, concept, needle, attrs)


@pytest.mark.parametrize("text, date, concept, needle, attrs", [
    # a consent's heading with words after its verb keeps its list in its sentence
    ("Risks explained to patient: bleeding, infection, cement leakage.", None, "INFECTION", None,
     dict(hypothetical=True)),
    ("Risks discussed with patient and daughter: infection, bleeding, cement leak.", None, "INFECTION", None,
     dict(hypothetical=True)),
    ("Risks and benefits discussed with the patient: infection and bleeding.", None, "INFECTION", None,
     dict(hypothetical=True)),
    # guard: a heading after the consent's sentence has ended
    ("Risks explained. Pneumonia: on antibiotics.", None, "INFECTION", None, dict(hypothetical=False)),
    # a numbered list of risks whose items end in semicolons
    ("Possible intraoperative and postoperative risks:\n1. Bleeding, hematoma;\n2. Postoperative infection;\n"
     "3. Adjacent vertebral re-fracture;", None, "INFECTION", None, dict(hypothetical=True)),
    # guards: a semicolon inside a line still ends a cue's reach
    ("Differential includes discitis; an old fracture would not explain the fever.", None, "INFECTION", "fever",
     dict(uncertain=False)),
    ("Risks discussed; she has a UTI on nitrofurantoin.", None, "INFECTION", None, dict(hypothetical=False)),
    # shingles is an infection, the vaccine and prophylaxis are not, and a dermatome is no vertebra
    ("Acute herpes zoster (shingles), left T10 dermatome.", None, "INFECTION", "zoster",
     dict(negated=False, levels=[])),
    ("Herpes zoster dermatome Th5 right, on valaciclovir.", None, "INFECTION", None, dict(levels=[])),
    ("Herpes zoster (shingles), right T9, single dermatome.", None, "INFECTION", None, dict(levels=[])),
    # guard: a fracture's level before a comma and other words
    ("Acute T9 fracture, single level, with oedema.", None, "FRACTURE", None, dict(levels=["T9"])),
    ("PMH: Shingles 2022, L T10 dermatome, treated with valaciclovir.", "2025-03-01", "INFECTION", None,
     dict(historical=True)),
    ("Recombinant zoster vaccine (Shingrix) once recovered.", None, "INFECTION", None, None),
    ("Acyclovir 400 mg BID (zoster ppx).", None, "INFECTION", None, None),
    ("Vaccines: flu today, shingles #2 given.", None, "INFECTION", None, None),
    # what to look out for, with the telling after it; what a test can miss
    ("Signs of wound infection explained (increasing redness, pus, fever) - contact the nurses.", None,
     "INFECTION", "fever", dict(hypothetical=True)),
    ("No signs of infection at the site.", None, "INFECTION", None, dict(negated=True, hypothetical=False)),
    ("Radiographs can miss a very early or subtle vertebral fracture; MRI if pain persists.", None, "FRACTURE",
     None, dict(hypothetical=True)),
    ("The outside CT missed the T12 vertebral fracture.", None, "FRACTURE", None, dict(hypothetical=False)),
    # a procedure dated in a bracket after it was done
    ("L1 vertebroplasty (Clydeview Spinal Unit, 2021) for a painful osteoporotic compression fracture.",
     "2025-02-27", "PRIOR_AUGMENTATION", None, dict(hypothetical=False)),
    ("L1 vertebroplasty (Clydeview Spinal Unit, 2021) for a painful osteoporotic compression fracture.",
     "2025-02-27", "FRACTURE", None, dict(historical=True)),
    ("T12 fracture (fall from a ladder, 2019).", "2025-02-27", "FRACTURE", None, dict(historical=True)),
    # one reading beside others
    ("This could be musculoskeletal, or early shingles; a vertebral fracture is also possible given her steroids.",
     None, "FRACTURE", None, dict(uncertain=True)),
    # guards: no year; a booking; a policy's revision
    ("Referred for L1 vertebroplasty (Dr Smith, IR).", "2025-02-27", "PRIOR_AUGMENTATION", None,
     dict(hypothetical=True)),
    ("Procedure: L1 kyphoplasty (booked 04/03/2025, day case)", "2025-02-27", "PRIOR_AUGMENTATION", None,
     dict(hypothetical=True)),
    ("Medical Policy 7.01.31, Vertebroplasty and Kyphoplasty (rev 01/2024)", "2025-02-27", "PRIOR_AUGMENTATION",
     None, dict(hypothetical=True)),
])
def test_fortieth_wave(extractor, text, date, concept, needle, attrs):
    assert_wave_row(extractor, text, date, concept, needle, attrs)


@pytest.mark.parametrize("text, date, concept, needle, attrs", [
    # an antibiotic given as a procedure's prophylaxis, said in a bracket after it
    ("Procedural infection risk discussed given central line: single dose IV cefazolin at start (prophylaxis).",
     None, "INFECTION", "cefazolin", None),
    # guard: an antibiotic for an infection
    ("IV cefazolin for cellulitis, day 3 of 5.", None, "INFECTION", "cefazolin", dict(hypothetical=False)),
    # an admission's days with only the first day's number, and "on" that is no treatment
    ("- Readmission 14-18/03 with fever on connection, ?line sepsis: paired cultures negative.", "2025-05-06",
     "INFECTION", "fever", dict(historical=True)),
    # guards: a count of days, and a treatment that goes on
    ("Cefalexin 5-7/7 for cellulitis.", "2025-07-20", "INFECTION", "cellulitis", dict(historical=False)),
    # ... written after the infection too, where a first day alone still reads as days
    ("Left leg cellulitis 5-7/7 oral flucloxacillin from the GP.", "2025-08-20", "INFECTION", "cellulitis",
     dict(historical=False)),
    ("UTI 14-17/08, trimethoprim, settled.", "2025-08-20", "INFECTION", "UTI", dict(historical=True)),
    ("Admitted 14-18/03 with pneumonia, still on amoxicillin.", "2025-03-25", "INFECTION", "pneumonia",
     dict(historical=False)),
    # "possible" after what it doubts, and "there is possible ..."
    ("Steroid exposure + prolonged ICU stay -> osteoporotic vertebral fracture possible.", None, "FRACTURE", None,
     dict(uncertain=True)),
    ("There is possible subtle anterior wedging of L1 on the lateral view.", None, "FRACTURE", None,
     dict(uncertain=True, levels=["L1"])),
    # guards: "as soon as possible", "where possible"
    ("Acute L1 fracture; mobilise as soon as possible.", None, "FRACTURE", None, dict(uncertain=False)),
    ("Acute L1 fracture - vertebroplasty where possible.", None, "FRACTURE", None, dict(uncertain=False)),
    ("INDICATION: L1 compression fracture on radiographs. Assess acuity prior to possible\nkyphoplasty.", None,
     "PRIOR_AUGMENTATION", None, dict(uncertain=True)),
    # an orbit's fracture, with a bracket before "fracture", in a report that names thoracic levels
    ("Visualized T1-T3 vertebral bodies are normal.\n\nIMPRESSION:\n1. Comminuted L orbital floor (blowout) fracture "
     "with herniation of orbital fat.\n2. L ZMC (tetrapod) fracture.", None, "FRACTURE", None, None),
    # the eye's retropulsion is an orbital examination
    ("Retropulsion of the globe on palpation improved at the end of the case.", None, "RETROPULSION", None, None),
    ("Increased resistance to retropulsion of the right globe.", None, "RETROPULSION", None, None),
    # guard: a fragment's retropulsion
    ("Mild retropulsion of the posterosuperior corner of L1.", None, "RETROPULSION", None, dict(levels=["L1"])),
    # a semicolon inside an aside in a consent's list
    ("Risks explained including\ncement leakage (usually asymptomatic; rarely nerve injury or cement travelling to\n"
     "the lungs), bleeding, infection, rib fracture from positioning.", None, "INFECTION", None,
     dict(hypothetical=True)),
    # Scheuermann's wedging, explained by the next sentence
    ("Anterior wedging of T7, T8 and T9 with undulating endplates and\nmultiple Schmorl's nodes. These are\n"
     "the appearances of Scheuermann disease.", None, "FRACTURE", "wedging", None),
    ("- Anterior wedging of T7 (8 deg), T8 (11 deg) and T9 (7 deg), with irregular endplates and several\n"
     "  Schmorl's nodes. These meet the Sorensen criteria for Scheuermann's disease.", None, "FRACTURE", "wedging",
     None),
    # guard: a next sentence that says otherwise
    ("Anterior wedging of T12. These are not developmental.", None, "FRACTURE", "wedging", dict(levels=["T12"])),
    # a trend whose next arrow starts the next line
    ("ITP responding: plt 12 (03/02) -> 41 (10/02)\n-> 88 today, without further transfusion.", "2025-02-12",
     "COAGULOPATHY", "88", dict(historical=False)),
    ("ITP responding: plt 12 (03/02) -> 41 (10/02)\n-> 88 today, without further transfusion.", "2025-02-12",
     "COAGULOPATHY", "41", dict(historical=True)),
    # a checklist's N after a bracket
    ("Active infection (local or systemic)                N    see haem note", None, "INFECTION", None,
     dict(negated=True)),
])
def test_forty_first_wave(extractor, text, date, concept, needle, attrs):
    assert_wave_row(extractor, text, date, concept, needle, attrs)


@pytest.mark.parametrize("text, date, concept, needle, attrs", [
    # a diabetic foot's classification answered after a bracket naming the scale
    ("Infection (IWGDF): uninfected (grade 1).", None, "INFECTION", None, dict(negated=True)),
    ("Wound infection: clinically uninfected, probe-to-bone negative.", None, "INFECTION", None,
     dict(negated=True)),
    # guard: a grade that is an infection
    ("Infection (IWGDF): moderate (grade 3) - cellulitis > 2 cm around the ulcer.", None, "INFECTION",
     "cellulitis", dict(negated=False)),
    # a fracture treated with a cement procedure of years ago is old
    ("- L1 osteoporotic collapse treated with kyphoplasty 2021", "2025-04-24", "FRACTURE", None,
     dict(historical=True, levels=["L1"])),
    # guards: one treated days ago, and a procedure after a comma (its own date)
    ("- Acute L1 fracture treated with kyphoplasty 21/04/2025.", "2025-04-24", "FRACTURE", None,
     dict(historical=False, acuity="acute")),
    ("- T12 compression fracture, L1 kyphoplasty 2021", "2025-04-24", "FRACTURE", None, dict(historical=False)),
])
def test_forty_second_wave(extractor, text, date, concept, needle, attrs):
    assert_wave_row(extractor, text, date, concept, needle, attrs)


@pytest.mark.parametrize("text, date, concept, needle, attrs", [
    # no source of an infection found
    ("Obs: afebrile throughout admission, max 37.3. No source of infection, chest clear.", None, "INFECTION",
     "infection", dict(negated=True)),
    ("Febrile neutropenia, no obvious source of sepsis identified.", None, "INFECTION", "sepsis",
     dict(negated=True)),
    # guard: the fever itself stays
    ("Febrile neutropenia, no obvious source of sepsis identified.", None, "INFECTION", "Febrile",
     dict(negated=False)),
    # where an organism was found is not a treatment going on
    ("3. Post febrile neutropenia 24-30/01: Hickman exit-site infection (MSSA on swab, BC neg).", "2025-02-04",
     "INFECTION", "febrile", dict(historical=True)),
    # guard: a treatment that goes on
    ("Febrile neutropenia 24-30/01, still on oral ciprofloxacin.", "2025-02-04", "INFECTION", "Febrile",
     dict(historical=False)),
    # an admission's days after the hospital's name
    ("5. Community-acquired pneumonia, admitted to Northgate 20-23/09/2025 - IV co-amoxiclav.", "2025-10-06",
     "INFECTION", "pneumonia", dict(historical=True)),
    # what a treatment is for in general
    ("Vertebroplasty is only considered for a painful recent fracture, so it is not something he needs.",
     "2025-10-06", "FRACTURE", None, dict(hypothetical=True)),
    ("Kyphoplasty is reserved for fractures that fail to settle with analgesia.", None, "FRACTURE", None,
     dict(hypothetical=True)),
    # guard: an indication for the patient's own fracture
    ("Vertebroplasty is indicated for the acute L1 fracture.", None, "FRACTURE", None, dict(hypothetical=False)),
    # the level a bone density scan leaves out for its fracture
    ("DXA: L1-L4: L2 excluded (fracture); L1, L3, L4 T-score -2.6", None, "FRACTURE", None, dict(levels=["L2"])),
    # a relative's fractures, after "as" and her name
    ("Lives with wife Maureen. A carer's assessment has been requested, as Maureen has needed more help at "
     "home since her vertebral fractures.", None, "FRACTURE", None, dict(family=True)),
    # the leukaemias by their abbreviations
    ("Dx: Ph-negative B-ALL (dx 13/01/25), induction day 22.", None, "MALIGNANCY", None, dict(negated=False)),
    ("AML in CR1 after 2 cycles of 7+3.", None, "MALIGNANCY", "AML", dict(negated=False)),
    # guards: an angiomyolipoma, and the word "all"
    ("Left renal AML measuring 12 mm, unchanged.", None, "MALIGNANCY", None, None),
    ("Bloods all normal; ALL other systems reviewed.", None, "MALIGNANCY", None, None),
    # a radiotherapy fraction given on a day
    ("- RT 20 Gy in 5 # to T8-T12, # 1 on 04/10, # 5/5 completed today.", None, "FRACTURE", None, None),
    # guard: a fracture on a day
    ("L1 # on 04/10 after a fall.", None, "FRACTURE", None, dict(levels=["L1"])),
])
def test_forty_third_wave(extractor, text, date, concept, needle, attrs):
    assert_wave_row(extractor, text, date, concept, needle, attrs)


@pytest.mark.parametrize("text, date, concept, needle, attrs", [
    # an age asked between two, after "if it is"
    ("1. L2 fracture - we do not know if it is recent or old.", None, "FRACTURE", None,
     dict(acuity="indeterminate")),
    # an age given and then withdrawn by the imaging
    ("The pain began after lifting, which fits a recent T12 fracture, but there is no earlier film and the "
     "X-ray cannot tell.", None, "FRACTURE", None, dict(acuity="indeterminate")),
    ("T11 wedge # - story fits but XR can't date it.", None, "FRACTURE", None, dict(acuity="indeterminate")),
    # guards: someone else who cannot say, and a question about something else
    ("Acute L1 fracture, but the patient cannot say.", None, "FRACTURE", None, dict(acuity="acute")),
    ("Acute T12 fracture but we cannot say whether the canal is narrowed.", None, "FRACTURE", None,
     dict(acuity="acute")),
    # an episode that has not come back, or has fully settled
    ("No fever; the cystitis treated in April has not recurred.", "2025-07-02", "INFECTION", "cystitis",
     dict(corrected="resolved")),
    ("No sphincter symptoms. Hand infection fully\nsettled.", None, "INFECTION", None, dict(corrected="resolved")),
    # guard: a fever settled with paracetamol is not an infection over
    ("Pneumonia; febrile overnight, settled with paracetamol.", None, "INFECTION", "Pneumonia",
     dict(corrected="")),
    # a checklist's "N" after the word for its symptoms
    ("Infection screen ......... Fever N   UTI sx N   new cough N", None, "INFECTION", "UTI", dict(negated=True)),
    # a form's heading and the tests sent, not an infection
    ("INFECTION / RESPIRATORY SCREEN\nFever in last 48h ........ N", None, "INFECTION", "INFECTION", None),
    ("Septic screen sent, blood cultures x2.", None, "INFECTION", None, None),
    # an infant's illness, its age in months
    ("PMH: epilepsy from age 3; febrile convulsions at 14 months.", "2025-08-11", "INFECTION", None,
     dict(historical=True)),
    # a CT of chest, abdomen and pelvis wrapped over a line
    ("Repeat CT\nCAP and MRI thoracic spine booked for 12/05.", None, "INFECTION", None, None),
    # a screen for cord compression
    ("Red flag screen (MSCC):\n - band-like pain .... N", None, "EPIDURAL_DISEASE", None, None),
    # a deformity found to be a Schmorl's node, and a quoted fracture taken back
    ("MDT: the reported L1 fracture is not supported. The L1 superior endplate depression is a Schmorl's node "
     "with a sclerotic rim.", None, "FRACTURE", "depression", dict(negated=True)),
    ("The discharge letter's \"L2 fracture\" was shorthand for the transverse process fractures.", None,
     "FRACTURE", None, dict(negated=True)),
    # guard: a Schmorl's node in a differential
    ("The differential is a Schmorl's node or a mild compression fracture.", None, "FRACTURE", None,
     dict(uncertain=True, negated=False)),
    # a question as a thing, before a denial
    ("The query raised on his first scan was looked at again at the MDT: there is no fracture at L1.", None,
     "FRACTURE", None, dict(negated=True, uncertain=False)),
    # a doctor's thought
    ("The ED consultant wondered about an occult L1 compression fracture, so MRI was done.", None, "FRACTURE",
     None, dict(uncertain=True)),
    # what a treatment is for in general
    ("Vertebroplasty can help some people with painful recent fractures.", None, "FRACTURE", None,
     dict(hypothetical=True)),
    ("Kyphoplasty and vertebroplasty have the same indication (a painful recent fracture).", None, "FRACTURE",
     None, dict(hypothetical=True)),
    # a level's own treatment is not the fracture's level
    ("Known T12 wedge and previous L2 cement.", None, "FRACTURE", None, dict(levels=["T12"])),
    ("T12 superior endplate compression deformity adjacent to the L1 augmentation, ~30% anterior height loss.",
     None, "FRACTURE", "height loss", dict(levels=["T12"])),
    # guard: the augmentation keeps its level
    ("T12 cement from prior kyphoplasty causes artefact.", None, "PRIOR_AUGMENTATION", None, dict(levels=["T12"])),
    # a differential under a heading alone on its line
    ("Differentials discussed with carer and mum\n1. Hip subluxation\n2. Fracture - long bone or vertebral "
     "fracture\n\nPlan\n1. XR", None, "FRACTURE", "vertebral", dict(uncertain=True)),
    # a consent's risks after "of (c)"
    ("Risks of (c) explained to all present: cement leakage (usually no symptoms;\nrarely nerve problems), "
     "bleeding, infection.", None, "INFECTION", None, dict(hypothetical=True)),
    # mesothelioma is a cancer
    ("Diagnosis: epithelioid mesothelioma, left pleura.", None, "MALIGNANCY", None, dict(negated=False)),
])
def test_forty_fourth_wave(extractor, text, date, concept, needle, attrs):
    assert_wave_row(extractor, text, date, concept, needle, attrs)


@pytest.mark.parametrize("text, concept, needle, attrs", [
    # a plan's imaging findings are the patient's: the plan works on them
    ("Plan:\n1. MRI thoracolumbar spine with STIR requested to date the T12 fracture.", "FRACTURE", None,
     dict(hypothetical=False, uncertain=False, negated=False)),
    ("Plan:\n- TLSO when OOB for the T6 fracture (not needed for L1 after fixation).", "FRACTURE",
     None, dict(hypothetical=False)),
    ("Plan:\n#Chronic L3 compression deformity -- no edema, not symptomatic", "FRACTURE", None,
     dict(hypothetical=False, acuity="chronic")),
    ("Plan:\n- Refer to spinal MDT re the L1 fracture and the retropulsed fragment.", "RETROPULSION", None,
     dict(hypothetical=False)),
    ("Plan:\n- Discuss the T10 epidural tumour extension at the spinal MDT.", "EPIDURAL_DISEASE", None,
     dict(hypothetical=False)),
    # ... and what the plan's own words make of them stays
    ("Plan:\n- XR T-spine to look for a T12 fracture.", "FRACTURE", None, dict(hypothetical=True)),
    ("Plan:\n- If marrow oedema at L1 on MRI, refer IR.", "OEDEMA", None, dict(hypothetical=True)),
    ("Plan:\n- MRI L-spine to exclude an L2 fracture.", "FRACTURE", None, dict(uncertain=True)),
    # guards: a planned augmentation and a plan's warnings stay hypothetical
    ("Plan:\n- Kyphoplasty T12 on Friday.", "PRIOR_AUGMENTATION", None, dict(hypothetical=True)),
    ("Plan:\n- Call the VH line if fever >38 or new leg weakness.", "INFECTION", None,
     dict(hypothetical=True)),
    # what a treatment is meant to prevent
    ("4. Denosumab to continue (reduces skeletal-related events incl. pathological fractures at T12).",
     "FRACTURE", None, dict(hypothetical=True)),
    ("The benefit of denosumab in preventing pathological fractures of the spine has to be weighed.",
     "FRACTURE", None, dict(hypothetical=True)),
    ("Zoledronate reduces the risk of new vertebral fractures.", "FRACTURE", None, dict(hypothetical=True)),
    # guard: what was prevented is not a purpose
    ("Pain prevented the MRI. CT: T12 compression fracture.", "FRACTURE", None, dict(hypothetical=False)),
    # a plan's MSCC that is a service's word, not a finding
    ("Plan:\n- MSCC precautions (flat bed rest until MRI, log roll) - MRI whole spine tomorrow.",
     "EPIDURAL_DISEASE", None, None),
    ("Plan:\n2. Dexamethasone 16 mg PO stat then 8 mg bd, per MSCC guidance pending the scan.",
     "EPIDURAL_DISEASE", None, None),
    ("Plan:\n4. MSCC information card re-explained: new or severe back pain, leg weakness.",
     "EPIDURAL_DISEASE", None, None),
    # guard: the finding itself
    ("Plan:\n- MSCC at T10 from a vertebral metastasis: dexamethasone and radiotherapy today.",
     "EPIDURAL_DISEASE", None, dict(hypothetical=False, levels=["T10"])),
])
def test_a_plans_findings_are_the_patients(extractor, text, concept, needle, attrs):
    assert_wave_row(extractor, text, None, concept, needle, attrs)


@pytest.mark.parametrize("text, values", [
    # when the value before a trend's arrow was taken, written between them
    ("Bloods: Plt 46 on adm (08/03) -> 50 today (13/03). INR 1.1.",
     [("platelets", 46, True), ("platelets", 50, False), ("INR", 1.1, False)]),
    ("INR 2.9 yesterday -> 1.4 today", [("INR", 2.9, True), ("INR", 1.4, False)]),
    # guard: no arrow, no trend
    ("Plt 46 at baseline, plt 50 today", [("platelets", 46, False), ("platelets", 50, False)]),
])
def test_a_trend_with_when_its_first_value_was_taken(extractor, text, values):
    found = [(m["lab"], m["value"], m["historical"]) for m in
             find(extractor.mentions(text, "PROGRESS NOTE", "2025-03-13"), "COAGULOPATHY")]
    assert found == values, text


@pytest.mark.parametrize("text, values", [
    # a checklist's dot leader between the lab and its value
    ("Pre-procedure checklist:\n  INR .............................. 1.1 today (was 2.7 on 12/02)",
     [(1.1, False)]),
    # a month after a value quoted after today's: earlier, so today's stays the latest
    ("INR 1.3 this morning; Plt 198.\n- GP: INR 1.7 (Dec), INR 3.8 (Jan), INR 2.6 (Feb) with no dose changes.",
     [(1.3, False), (1.7, True), (3.8, True), (2.6, True)]),
    # ... not the note's own month, nor "may"
    ("INR 1.3 this morning. Repeat INR 1.4 (Mar).", [(1.3, False), (1.4, False)]),
    ("INR 1.3 this morning. Repeat INR 1.4, may need vitamin K.", [(1.3, False), (1.4, False)]),
    # an earlier day in brackets before the value, after today's (under a heading with today's day)
    ("Labs 03/13/2025\n  INR 1.2  (03/04: INR 2.8)\n  PT 13.9 sec", [(1.2, False), (2.8, True)]),
    ("INR 1.2 today (on 04/03 INR 2.8)", [(1.2, False), (2.8, True)]),
    # guards: a heading with another day; no day before the quoted value
    ("Labs 03/10/2025\n  INR 1.2  (03/04: INR 2.8)", [(1.2, False), (2.8, False)]),
    ("INR 1.2 today (repeat INR 2.8)", [(1.2, False), (2.8, False)]),
    # earlier days before each value in a list after today's
    ("Today POCT INR 1.3 - below range.\nPrevious: 06/03 INR 2.9, 28/02 INR 3.2.", [(1.3, False), (2.9, True),
                                                                              (3.2, True)]),
])
def test_a_lab_quoted_from_an_earlier_month_or_after_a_leader(extractor, text, values):
    found = [(m["value"], m["historical"]) for m in
             find(extractor.mentions(text, "PROGRESS NOTE", "2025-03-13"), "COAGULOPATHY") if m["lab"] == "INR"]
    assert found == values, text


@pytest.mark.parametrize("text, needle, acuity", [
    # the age its sentence gives the same fracture, after its height loss or in a second mention
    ("There is a pathologic compression fracture of T9 with approximately 40% loss of vertebral body height, "
     "new since the 02/2024 chest CT.", "pathologic compression fracture", "acute"),
    ("T12: compression fracture with 30% height loss and diffuse marrow edema on STIR, consistent with an "
     "acute fracture.", "compression fracture", "acute"),
    ("1. Compression fractures of T11 and L2, new since 03/2023.", "fractures", "acute"),
    # guards: another level's age is not this one's; oedema gives the level's status, not the word
    ("T12 wedge deformity and an acute L1 compression fracture.", "wedge", ""),
    ("L1 compression fracture with marrow oedema.", "fracture", ""),
    # an age closing a list item's line: after a bracket, or at the line's end
    ("DIAGNOSIS\n1. Compression fracture L1 (AO A1), recent, traumatic.", "fracture", "acute"),
    ("Diagnosis: 1. Myeloma\n2. T9 vertebral collapse, recent\n3. Anaemia", "collapse", "acute"),
    ("T12 compression fracture (new).", "fracture", "acute"),
    # guard: the next item's word
    ("L1 fracture, recent fall.", "fracture", ""),
    # the next clause says only that its age cannot be told
    ("There is a wedge compression fracture of L3 with approximately 30% loss\nof anterior height; it is of "
     "indeterminate age.", "fracture", "indeterminate"),
    ("There is a compression deformity of L1 with approximately 30% loss of anterior height. No prior imaging "
     "to establish chronicity; age indeterminate.", "deformity", "indeterminate"),
    ("Lumbar XR showed an L1 wedge compression fracture; the age of this could not be determined as there was "
     "no previous imaging.", "fracture", "indeterminate"),
    # guards: another level's age; the finding's doubt, not its age
    ("L2 wedge fracture. The age of the T9 fracture cannot be determined.", "wedge", ""),
    ("There is an L2 compression fracture. This is uncertain.", "fracture", ""),
    # "old-appearing", and "old" before a wrapped line
    ("There is also an old-appearing mild wedge deformity of L2 with anterior osteophytes.", "wedge",
     "chronic"),
    ("L1: old\nosteoporotic wedge, not the source of the current pain.", "wedge", "chronic"),
    # guard: "old" closing a line before the next level's line is the first fracture's
    ("T12 wedge fracture old\nL1 burst fracture acute", "burst", "acute"),
    ("T12 wedge fracture old\nL1 burst fracture acute", "wedge", "chronic"),
    # an age stated after the fracture: "is recent", "looks new", "- new", ", new on CXR"
    ("We agree with the MRI report: the T12 fracture is recent, with oedema on STIR.", "fracture", "acute"),
    ("CT: T12 compression # - looks new, formal report to follow.", "#", "acute"),
    ("An MRI showed that the L1 fracture is recent.", "fracture", "acute"),
    # guards: asked, supposed, or said of a class
    ("MRI whole spine including STIR, to establish whether the T7 fracture is recent.", "fracture", ""),
    ("If the T12 fracture is recent and painful, a kyphoplasty could be done.", "fracture", ""),
    ("We cannot tell from CT whether the T12 fracture is\nrecent or old.", "fracture", "indeterminate"),
    ("Vertebroplasty is offered for painful L1 fractures that are recent, not for old healed ones.", "fracture",
     ""),
    ("4. L1 compression fracture - new, seizure/fall in an osteopenic 74-year-old.", "fracture", "acute"),
    ("2. T8 compression fracture, new on CXR today, likely from coughing.", "fracture", "acute"),
    # new against an earlier study, closing its sentence or in the next
    ("There is a compression fracture of L2 with approximately 35% loss of height centred on the superior "
     "endplate, not present on the CT KUB of 11/05/2022.", "compression fracture", "acute"),
    ("There is a wedge compression fracture of L1 with approximately 30% loss of anterior vertebral body "
     "height. This is new compared with the lateral chest radiograph.", "wedge", "acute"),
    ("L2: Superior endplate compression fracture with ~20% anterior height loss, posterior wall\nintact. New "
     "compared with 03/2023.", "compression fracture", "acute"),
    # guard: another level's
    ("L2 wedge fracture with 20% height loss. New compared with 2023 at T9.", "wedge", ""),
    # an age closing the sentence, past what else it says of the vertebra
    ("L1: mild anterior wedge compression (~15%) with no oedema, chronic.\nOther levels: normal.", "wedge",
     "chronic"),
    ("T7: mild anterior wedge deformity (about 15%) with normal marrow\nsignal on all sequences - chronic.",
     "wedge", "chronic"),
    ("L2: Mild anterior wedge deformity (~15%) with normal STIR signal and fatty marrow, in keeping\nwith an "
     "old injury.", "wedge", "chronic"),
    # guard: not the sentence's last fracture
    ("T12: mild anterior wedge deformity (about 15%) with normal marrow signal on all sequences, and an L1 "
     "burst fracture with diffuse marrow oedema on STIR - acute.", "wedge", ""),
])
def test_an_age_written_apart_from_its_fracture(extractor, text, needle, acuity):
    found = find(extractor.mentions(text, "MRI SPINE", None), "FRACTURE", needle)
    assert found, text
    assert found[0]["acuity"] == acuity, text


@pytest.mark.parametrize("text, needle, corrected", [
    # the clause goes on to say the episode is over, past its dates, cultures and drugs
    ("Fever 38.2 on 04/03 after the infusion - cultures negative, no source found, settled.", "Fever", "resolved"),
    ("UTI diagnosed by the GP on 02/03 - trimethoprim 3 days, completed 05/03.", "UTI", "treated"),
    ("Admitted 11/2024 with community-acquired pneumonia, IV co-amoxiclav then oral, recovered.", "pneumonia",
     "resolved"),
    ("Cellulitis of the left forearm after a cat scratch (flucloxacillin 7 days, finished 01/03).", "Cellulitis",
     "treated"),
    ("Superficial wound infection at day 10 - five days of oral antibiotics from the GP, healed.",
     "wound infection", "resolved"),
    ("Dental abscess in 11/2024; resolved.", "abscess", "resolved"),
    ("Chest infection in January - sputum grew H. influenzae, cleared with a week of doxycycline.",
     "Chest infection", "resolved"),
    ("MRSA bacteraemia 13/10 (1 of 2 sets; same organism) - cleared, blood cultures 15/10 negative.",
     "bacteraemia", "resolved"),
    ("Urosepsis in 01/2025 with E. coli in both blood culture sets, IV gentamicin then oral co-amoxiclav,\n"
     "antibiotics completed.", "Urosepsis", "treated"),
    # guards: still going on, not over, or another finding's end
    ("Spondylodiscitis at L2-3 is responding but not yet treated surgically.", "Spondylodiscitis", ""),
    ("AE 003: pneumonia, grade 2, non-serious - outcome: not recovered.", "pneumonia", ""),
    ("Aspiration pneumonia on IV co-amoxiclav (day 3), improving.", "pneumonia", ""),
    ("Febrile 38.6 overnight on the ward, blood cultures sent, settled with paracetamol.", "Febrile", ""),
    ("Sepsis from a line infection, recovering on vancomycin.", "Sepsis", ""),
    ("Community-acquired pneumonia, to complete 7 days of amoxicillin.", "pneumonia", ""),
    ("Primary: E. coli bacteraemia\nSecondary: delirium (resolved)", "bacteraemia", ""),
    ("A41.51 Sepsis due to Escherichia coli, with septic shock on admission and organ dysfunction\n"
     " N17.9 Acute kidney injury - resolved", "Sepsis", ""),
    ("Pneumonia on IV antibiotics. The delirium has settled.", "Pneumonia", ""),
    ("Active issues: HAP on IV pip-tazo (day 3; still on 2 L O2); E. coli UTI (treated).", "HAP", ""),
    ("SECONDARY: Osteomyelitis of the R 4th toe (resected); DM2; AKI (resolved).", "Osteomyelitis", ""),
])
def test_an_episode_s_end_closing_its_clause(extractor, text, needle, corrected):
    mention = one(extractor, text, "INFECTION", "CLINIC NOTE", needle, date="2025-03-10")
    assert mention["corrected"] == corrected, text
    assert mention["historical"] is bool(corrected), text  # an episode that is over is past


@pytest.mark.parametrize("text, negated", [
    # what is left of a partly resolved collection is still there
    ("IMPRESSION: Near-complete resolution of the psoas abscess around the drain.", False),
    ("Partial resolution of the paraspinal abscess at L3-4 on today's MRI.", False),
    ("There is incomplete resolution of the epidural abscess posterior to T9.", False),
    # guards: resolved
    ("IMPRESSION: Complete resolution of the psoas abscess.", True),
    ("Interval resolution of the paraspinal abscess.", True),
])
def test_a_partly_resolved_infection_is_still_there(extractor, text, negated):
    assert one(extractor, text, "INFECTION", "MRI SPINE", "abscess")["negated"] is negated, text


@pytest.mark.parametrize("text", [
    "He is at a higher risk\nof infection while on chemotherapy.",
    "She has a history\nof an L1 compression fracture.",
    "L1 compression fracture of uncertain\nage.",
    "Thrombocytopenia, now within\nnormal limits.",
    "Mother had osteoporotic\nvertebral fractures.",
    "There is no evidence\nof retropulsion at L1.",
])
def test_a_phrase_reads_the_same_across_a_line_wrap(extractor, text):
    """ConText's multi-word phrases, of every category, match across a hard wrap: the wrapped text
    gives the mentions and attributes of the same text on one line (same offsets: one character for
    one)."""
    keys = ("concept", "start", "end", "negated", "uncertain", "historical", "hypothetical", "family", "levels",
            "acuity", "corrected")
    wrapped = [tuple(m[k] for k in keys) for m in extractor.mentions(text, "NOTE")]
    assert wrapped, text
    assert wrapped == [tuple(m[k] for k in keys) for m in extractor.mentions(text.replace("\n", " "), "NOTE")], text


@pytest.mark.parametrize("text, needle, hypothetical", [
    # advice about the infection named right before it
    ("Fever precautions reviewed: call for temp of 100.4 F or higher.", "Fever", True),
    ("Neutropenic fever precautions and education before cycle 1.", "fever", True),
    ("Infection counselling for ocrelizumab done today.", "Infection", True),
    ("Given the neutropenic fever card and the unit's number.", "fever", True),
    # guards: the patient's infection, with precautions or a screen after it
    ("MRSA bacteraemia, contact precautions.", "bacteraemia", False),
    ("Fever 38.5 and rigors, sepsis screen sent.", "Fever", False),
])
def test_advice_about_an_infection_is_not_one(extractor, text, needle, hypothetical):
    assert one(extractor, text, "INFECTION", "CLINIC NOTE", needle)["hypothetical"] is hypothetical, text


@pytest.mark.parametrize("text, concept, family", [
    # a finding joined to a relative's in the same clause is the relative's too
    ("Her mother (78) has osteoporosis and has had two spinal crush fractures.", "FRACTURE", True),
    ("On LMWH; sister recently diagnosed with pregnancy-associated osteoporosis and vertebral fractures.",
     "FRACTURE", True),
    ("His father was treated for myeloma with several rounds of chemotherapy and later had a kyphoplasty.",
     "PRIOR_AUGMENTATION", True),
    # guards: another subject, a contrast, or another sentence
    ("Her mother had osteoporosis and she has two vertebral fractures herself.", "FRACTURE", False),
    ("Mother had osteoporosis but the patient's L1 compression fracture is traumatic.", "FRACTURE", False),
    ("Mother had osteoporosis. L1 compression fracture on today's MRI.", "FRACTURE", False),
    ("I explained to Mrs Jones and her husband what vertebroplasty involves and that it is offered for painful recent "
     "fractures.", "FRACTURE", False),
])
def test_a_relatives_findings_joined_in_one_clause(extractor, text, concept, family):
    assert one(extractor, text, concept, "CLINIC NOTE")["family"] is family, text
