"""vertebro: screen clinical notes for vertebroplasty candidates.

The library flows one way::

    io.readers -> prefilter -> nlp -> mentions -> screening -> report

``pipeline.screen(notes)`` runs it all on a pandas frame of notes and returns
the frames the command line writes.
"""

__version__ = "0.1.0"
