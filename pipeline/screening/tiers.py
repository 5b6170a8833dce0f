"""The screening tier of each patient (SPEC §4), first rule that applies wins."""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd

__all__ = ["Tier", "REPORT_ORDER", "assign_tiers"]


class Tier(StrEnum):
    """Screening tier of one patient."""

    NO_FRACTURE = "no_fracture"
    CONTRAINDICATED = "contraindicated"
    CANDIDATE = "candidate"
    NEEDS_IMAGING = "needs_imaging"
    NOT_INDICATED = "not_indicated"


# How a report lists tiers (most actionable first); not the decision order.
REPORT_ORDER = (Tier.CANDIDATE, Tier.NEEDS_IMAGING, Tier.CONTRAINDICATED,
                Tier.NOT_INDICATED, Tier.NO_FRACTURE)


def assign_tiers(patients: pd.DataFrame) -> np.ndarray:
    """Tier per patient row, from these boolean columns:

    ``has_fracture`` (any fracture level), ``has_active`` (an acute or
    indeterminate level), ``systemic`` (a systemic contraindication in the
    window), ``acute_free`` (an acute level without local contraindication),
    ``indeterminate_free`` (an indeterminate level without local
    contraindication).

    Precedence, first that applies:

    1. no_fracture — no fracture level at all.
       "No acute fracture. No compression deformity."
    2. contraindicated — an acute or indeterminate level and a systemic
       contraindication. "Acute L1 fracture with oedema" + "sepsis" or
       latest "INR 2.6".
    3. candidate — an acute level without local contraindication.
       "Acute L1 fracture with marrow oedema, no retropulsion", INR 1.0.
       Also when another level has retropulsion: "acute L2 fracture; chronic
       L1 fracture with retropulsion" -> candidate at L2.
    4. needs_imaging — an indeterminate level without local contraindication.
       "L2 compression fracture, age indeterminate" (MRI would tell).
    5. contraindicated — acute/indeterminate levels exist, every one with a
       local contraindication. "Acute L1 burst fracture with retropulsion."
    6. not_indicated — only chronic levels. "Healed T9 fracture."
    """
    conditions = [
        ~patients["has_fracture"],
        patients["has_active"] & patients["systemic"],
        patients["acute_free"],
        patients["indeterminate_free"],
        patients["has_active"],
    ]
    choices = [Tier.NO_FRACTURE.value, Tier.CONTRAINDICATED.value, Tier.CANDIDATE.value,
               Tier.NEEDS_IMAGING.value, Tier.CONTRAINDICATED.value]
    return np.select(conditions, choices, default=Tier.NOT_INDICATED.value).astype(object)
