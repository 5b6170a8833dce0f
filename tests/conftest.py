"""Shared fixtures: one pipeline for the whole session (building it takes ~0.5 s)."""

from pathlib import Path

import pytest

from pipeline.nlp.pipeline import Extractor

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "corpora" / "demo" / "notes.csv"


@pytest.fixture(scope="session")
def extractor() -> Extractor:
    return Extractor()


@pytest.fixture(scope="session")
def nlp(extractor):
    return extractor.nlp


def find(mentions, concept, text=None):
    """The mentions of ``concept`` (whose text contains ``text``, if given)."""
    return [m for m in mentions if m["concept"] == concept
            and (text is None or text.lower() in m["lexical_variant"].lower())]
