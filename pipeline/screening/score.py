"""The ranking score (0-100) of each patient; weights come from the config.

The score orders patients *within* a tier and never changes a tier. Each
feature is a number in 0..1 (most are true/false); the score is
``sum(weight * feature)`` clipped to 0..100 and rounded to one decimal.
Clipping keeps the scale fixed when a user config raises weights past 100
in total (or sets negative ones). Patients without a fracture score 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["FEATURES", "score_patients"]

# Feature name (= weight name in the config) -> what it measures.
FEATURES = {
    "acute_level": "at least one acute level",
    "acute_on_mri": "an acute level decided by an MRI report",
    "oedema": "marrow oedema linked to an acute level (its deciding note)",
    "new_fracture": "an acute level described as new / interval",
    "indeterminate_level": "best level is indeterminate (no acute level)",
    "pain": "current back pain documented in the window",
    "pain_severity": "highest numeric pain score in the window / 10",
    "malignant": "malignant aetiology (myeloma, lytic metastasis)",
    "osteoporosis": "osteoporosis or an osteoporotic fracture",
}


def score_patients(features: pd.DataFrame, weights: Mapping[str, float]) -> pd.Series:
    """Weighted sum of ``features`` (one column per weight), clipped to 0..100.

    "Acute L1 fracture with marrow oedema on MRI, new since prior, severe
    pain 9/10, osteoporosis" -> 30 + 15 + 20 + 10 + 5 + 9 + 5 = 94 with the
    default weights. "L2 compression fracture" (indeterminate) -> 15.
    A weight with no feature column is an error (``KeyError``), so a new
    weight in the config cannot be silently ignored.
    """
    missing = set(weights) - set(features.columns)
    if missing:
        raise KeyError(f"no score feature for weight(s): {', '.join(sorted(missing))}")
    total = np.zeros(len(features))
    for name, weight in weights.items():
        total += features[name].astype(float).to_numpy() * float(weight)
    return pd.Series(np.round(np.clip(total, 0.0, 100.0), 1), index=features.index)
