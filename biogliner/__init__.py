"""biogliner: zero-shot biomedical NER over PubMed and PMC OA with the GLiNER-biomed bi-encoder.

Importing biogliner has no side effects: no Ray, no logging configuration, no downloads.
"""

__version__ = "0.1.0"
