"""Which text of a Wikipedia article is annotated, and how it is cut into DocRED-sized documents.

`article_text` picks the lead section (default, as MemLLM's Wikipedia memory used `--abstracts`) or the
full text from the plain text of HF `wikimedia/wikipedia` rows, where section headings are lines of their
own without final punctuation. In full mode the headings themselves and the back-matter sections
(References, External links, ...) are dropped: they hold no prose to annotate. Paragraphs are joined with
a newline, which the tokenizer turns into a whitespace token that never enters a document.

`chunk_sentences` groups consecutive sentences into documents of at most `max_words` words (a longer
single sentence is a document alone); sentences are never cut. It does not look at sections, so a chunk
may span a heading in full mode.
"""

from __future__ import annotations

SECTIONS = ("lead", "full")
BACK_MATTER = frozenset(
    s.casefold()
    for s in (
        "References", "External links", "See also", "Further reading", "Notes", "Bibliography", "Sources",
        "Citations", "Footnotes", "Notes and references", "References and notes", "Works cited",
    )
)  # fmt: skip
_HEADING_MAX_WORDS = 12
_SENTENCE_END = tuple(".!?:;\"')]”’")


def is_heading(line: str) -> bool:
    """A short line that does not end like a sentence: a section heading in the dump's plain text."""
    line = line.strip()
    return bool(line) and len(line.split()) <= _HEADING_MAX_WORDS and not line.endswith(_SENTENCE_END)


def article_text(text: str, sections: str = "lead") -> str:
    """The part of `text` to annotate: `lead` (before the first heading) or `full` (without back matter)."""
    if sections not in SECTIONS:
        raise ValueError(f"unknown sections {sections!r}; choose one of {', '.join(SECTIONS)}")
    paragraphs: list[str] = []
    skipping = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        # The first non-empty line is prose even when short ("X is a village."), never a heading.
        if paragraphs and is_heading(line):
            if sections == "lead":
                break
            skipping = line.casefold() in BACK_MATTER
            continue
        if not skipping:
            paragraphs.append(line)
    return "\n".join(paragraphs)


def chunk_sentences(word_counts: list[int], max_words: int) -> list[range]:
    """Consecutive sentence ranges whose word counts sum to at most `max_words` (one long sentence alone)."""
    chunks: list[range] = []
    start, words = 0, 0
    for i, n in enumerate(word_counts):
        if i > start and words + n > max_words:
            chunks.append(range(start, i))
            start, words = i, 0
        words += n
    if start < len(word_counts):
        chunks.append(range(start, len(word_counts)))
    return chunks
