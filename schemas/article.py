"""`Article`: one raw-text input record of the Wikipedia path (HF `wikimedia/wikipedia` columns).

A plain value object: the Parquet source builds it, `annotators.wikipedia` turns it into `Document`s. No
validation here (an empty or non-string `text` is the annotator's to reject, with a reason).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Article:
    id: str
    url: str
    title: str
    text: str
    index: int  # position in its input; becomes Document.doc_index
