"""Evaluation against annotated data.

* :func:`evaluate_corpus` (``vertebro evaluate``): mentions, attributes, note
  flags and patient tiers against an annotated corpus folder (``corpora/dev``);
* :func:`evaluate_context` (``vertebro evaluate-context``): the ConText layer
  on the NegEx/ConText test-set format.

The Open-i benchmark is a script outside the package: ``evaluation/openi.py``.
"""

from .corpus import evaluate_corpus
from .negex import evaluate_context

__all__ = ["evaluate_corpus", "evaluate_context"]
