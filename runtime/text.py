"""Raw text to the sentences a write model reads: sentence splitting, DocRED-style words, spaced number ranges.

The write adapter is trained on DocRED-format sentences (tokens joined by single spaces), so text is brought
into that shape before it is prompted (paper arXiv 2404.11672 §3; docs/method.md §8.1):

- Sentences come from the project's spaCy pipeline (`annotators.nlp.load_nlp`, the statistical `senter`),
  not NLTK's `sent_tokenize` (Punkt) as in the reference code. Both split at ordinary sentence ends; they
  can differ at abbreviations, initials, list items and line breaks (spaCy's model uses context, Punkt a
  list of abbreviations it learned), so a few sentences of a text may be split differently.
- Words are spaCy tokens (not NLTK's `word_tokenize`), joined by single spaces; whitespace tokens (line
  breaks) are dropped. The two tokenizers agree on punctuation and clitics (`does n't`, `Fenwick 's`); spaCy
  also splits hyphenated words (`well - known`), NLTK keeps them whole, and NLTK rewrites `"` as `` `` `` /
  `''`, which spaCy leaves as is.
- A number range `1990-1995` (hyphen, en or em dash, with or without spaces) becomes `1990 – 1995`: an en
  dash with single spaces, as in DocRED. Chains (`1-2-3`) are rewritten throughout.

What it doesn't do: prompting or decoding (`runtime.write`), language detection, non-English text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

from memllm.runtime.errors import RuntimeInputError

# Lookarounds instead of capturing the digits: the digit between two ranges (`1-2-3`) is shared by both.
_NUMBER_RANGE = re.compile(r"(?<=\d)[ \t]*[-\u2013\u2014][ \t]*(?=\d)")
EN_DASH_SPACED = " \u2013 "


def space_number_ranges(sentence: str) -> str:
    """`digit [spaces] -|–|— [spaces] digit` -> `digit – digit` (en dash, one space each side)."""
    return _NUMBER_RANGE.sub(EN_DASH_SPACED, sentence)


def join_words(words: Iterable[str]) -> str:
    """DocRED-style text of a sentence: the non-blank words joined by single spaces, ranges spaced."""
    return space_number_ranges(" ".join(w for w in (w.strip() for w in words) if w))


def splitter_error() -> str | None:
    """Why sentences cannot be split here (one line saying what to install), or None."""
    import importlib.util

    from memllm.annotators.nlp import model_error
    from memllm.pipeline.extras import FEATURES

    if importlib.util.find_spec("spacy") is None:  # found, not imported (spaCy takes a second to import)
        return f"splitting text into sentences needs spaCy: pip install 'memllm[{FEATURES['wikipedia'].extra}]'"
    return model_error()


@functools.cache
def _nlp() -> Any:
    from memllm.annotators.nlp import load_nlp

    nlp = load_nlp()
    # Sentences only: named entities are not needed (the pipeline keeps `ner` for the Wikipedia path).
    for name in ("ner",):
        if name in nlp.pipe_names:
            nlp.disable_pipe(name)
    return nlp


def split_sentences(texts: Sequence[str], nlp: Any = None, batch_size: int = 64) -> list[list[str]]:
    """Each text as a list of DocRED-style sentences (empty sentences dropped).

    `nlp`: a spaCy pipeline with sentence boundaries; default the project's English pipeline."""
    if nlp is None:
        if error := splitter_error():
            raise RuntimeInputError(error)
        nlp = _nlp()
    out = []
    for doc in nlp.pipe(texts, batch_size=batch_size):
        sents = (join_words(t.text for t in sent if not t.is_space) for sent in doc.sents)
        out.append([s for s in sents if s])
    return out
