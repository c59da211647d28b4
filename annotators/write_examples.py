"""Memory-write examples: one per sentence, the triples a reader learns at that sentence (docs/method.md §6.1).

Reference-faithful: a relation is considered at sentence i when i is in its evidence or its evidence is
empty; it is written there with the first mention pair (in a shuffled order) that has one mention in
sentence i and both at or before i, skipping pairs whose name-triple is already in the sentence's list; a
relation with no such pair (e.g. evidence sentence mentions the entity only by a pronoun) is not written.
Triples are ordered by the location of the in-focus mention (the later one when both are in focus), ties
by the triple. Sentences without triples are kept: they teach the empty write.

Which pair is chosen is random in the reference: one `random.seed(42)` stream shuffles each selected
relation's full mention product, document after document. The choice matters beyond the names: when two
entities share a mention name ("Romania" / "Romanian"), a pair taken for one relation can use up the only
name-triple of another, which is then not written (seeded per sentence as below, 4 of Re-DocRED dev's 4,110
sentences write other relations than the reference's stream does). Two ways to seed:
- `rng=` a `random.Random` carried through a file in order (`reference_rng` gives the seeded start,
  `advance_reference_rng` skips a document without building it, from its raw DocRED record): the
  reference's exact choices, names included. The DocRED reader replays it per input file, so it is
  deterministic on any runner.
- no `rng`: a generator per sentence, seeded by `seed`, the sentence and the document's content
  (`content_digest`): not by its id, position or file name. Used where the reference's stream does not
  apply (raw-text input, evidence other than the input's own): the same document gives the same examples
  wherever it is read from, and two identical documents give identical examples.

A relation written at none of its sentences is one of two kinds (`unwritten_relations`, counted per run):
no sentence where it is considered has a qualifying mention pair (its evidence mentions an entity only by
a pronoun), or there is one, but at each such sentence every qualifying pair's name-triple was already in
that sentence's write for another relation (two entities sharing a mention name, "German" for Germany and
for the Germans): writing it again would repeat a memory write, so it is not.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import operator
import random
from collections.abc import Iterator, Mapping, Sequence

from memllm.schemas.document import Document
from memllm.schemas.records import WriteExample, WriteTriple

REFERENCE_SEED = 42


def reference_rng(seed: int = REFERENCE_SEED) -> random.Random:
    """The reference's stream at the start of an input file (`random.seed(42)`)."""
    return random.Random(seed)


def reference_stream_seed(evidence: str, seed: int = REFERENCE_SEED) -> int | None:
    """The seed of the reference's random stream for a run with this `--evidence` mode, or None where the run
    does not follow it: with evidence other than the input's own (`keep`), the reference's stream belongs to
    the reference's evidence, so each example seeds its own choice and the reader need not replay the
    stream (on DocRED distant, where every relation is considered at every sentence, the replay is most of
    the serial index pass)."""
    return seed if evidence == "keep" else None


def _selected_per_sentence(n_sents: int, evidences: list[list[int]]) -> list[list[int]]:
    """Label indices considered at each sentence, ascending: its evidence, or every sentence for empty
    evidence. (Run for every record of a file by the reader's serial pass: lists filled in label order
    are already sorted, and a label repeated in one evidence list lands next to itself; the always-list
    shares no label with them, so joining it is a merge. The lists may be shared: read them only.)"""
    selected: list[list[int]] = [[] for _ in range(n_sents)]
    always = []
    for i, evidence in enumerate(evidences):
        if not evidence:
            always.append(i)
        for ev in evidence:
            at = selected[ev]
            if not at or at[-1] != i:
                at.append(i)
    if always:
        return [sorted(s + always) if s else always for s in selected]
    return selected


def _steps(n: int) -> tuple[tuple[int, int], ...]:
    """Fisher-Yates from the end over n items: per step, the bound m and the bits `_randbelow(m)` draws."""
    return tuple((m, m.bit_length()) for m in range(n, 1, -1))


_N_STEPS = 257
_STEPS = [_steps(n) for n in range(_N_STEPS)]  # the reference's products are small; bigger ones are computed


def _permutation(n: int, draws: tuple[int, ...]) -> tuple[int, ...]:
    """What the Fisher-Yates steps of `_STEPS[n]` make of `range(n)` with these draws."""
    x = list(range(n))
    for (m, _), j in zip(_STEPS[n], draws):
        x[m - 1], x[j] = x[j], x[m - 1]
    return tuple(x)


# Every outcome of the small shuffles (products of up to 6 mention pairs: 9 in 10 of the reference's),
# indexed by their draws read as one mixed-radix number, the first draw most significant.
_SMALL = 7
_PERMUTATIONS = [
    [_permutation(n, draws) for draws in itertools.product(*(range(m) for m, _ in _STEPS[n]))] for n in range(_SMALL)
]


def shuffled_indices(rng: random.Random, n: int) -> Sequence[int]:
    """`rng.shuffle(list(range(n)))`, draw for draw (CPython's Fisher-Yates over `_randbelow`), inlined:
    the reference shuffles every selected relation's mention product at every sentence, ~190 shuffles a
    document, and the library version's call overhead was a third of the whole builder. Small shuffles
    look their permutation up instead of swapping."""
    getrandbits = rng.getrandbits
    if n < _SMALL:
        index = 0
        for m, k in _STEPS[n]:
            j = getrandbits(k)
            while j >= m:
                j = getrandbits(k)
            index = index * m + j
        return _PERMUTATIONS[n][index]
    x = list(range(n))
    for m, k in _STEPS[n] if n < _N_STEPS else _steps(n):
        j = getrandbits(k)
        while j >= m:
            j = getrandbits(k)
        i = m - 1
        x[i], x[j] = x[j], x[i]
    return x


def consume_shuffle(rng: random.Random, n: int) -> None:
    """Draw what `shuffled_indices(rng, n)` draws, without building the permutation."""
    getrandbits = rng.getrandbits
    for m, k in _STEPS[n] if n < _N_STEPS else _steps(n):
        while getrandbits(k) >= m:
            pass


def reference_shuffle_sizes(record: object) -> list[int]:
    """The sizes of the shuffles `build_write_examples` draws for a raw DocRED record, in order.

    Computed from the JSON itself, not a validated `Document`: the reader replays the stream past every
    record of a file in one cheap pass (no validation, no mention names) before any document is built.
    For a valid record it equals what the builder draws (tested); for an invalid one it is whatever
    prefix can be read: invalid records are never built, so only its being the same everywhere matters.
    """
    sizes: list[int] = []
    try:
        labels = record["labels"]
        pairs = [(label["h"], label["t"]) for label in labels]
        evidences = [label.get("evidence", []) for label in labels]
        counts = [len(v) for v in record["vertexSet"]]
        sizes.extend(_shuffle_sizes(len(record["sents"]), counts, pairs, evidences))
    except (KeyError, TypeError, IndexError, AttributeError):
        pass
    return sizes


def _shuffle_sizes(
    n_sents: int, mention_counts: list[int], pairs: list[tuple[int, int]], evidences: list[list[int]]
) -> Iterator[int]:
    """Per sentence, per selected relation: the size of its mention product, which the builder shuffles."""
    for selected in _selected_per_sentence(n_sents, evidences):
        for i in selected:
            h, t = pairs[i]
            yield mention_counts[h] * mention_counts[t]


def advance_reference_rng(record: object, rng: random.Random) -> None:
    """Consume exactly what `build_write_examples` draws for this raw record, without building anything.
    (The reader runs this over every record of a file, in order; 40% of the sizes are 1, which draw nothing.)"""
    for n in reference_shuffle_sizes(record):
        if n > 1:
            consume_shuffle(rng, n)


def skip_document(doc: Document, rng: random.Random) -> None:
    """Consume exactly what `build_write_examples(doc, rng=rng)` draws, without building anything."""
    counts = [len(e.mentions) for e in doc.entities]
    pairs = [(r.h, r.t) for r in doc.relations]
    for n in _shuffle_sizes(len(doc.sents), counts, pairs, [r.evidence for r in doc.relations]):
        consume_shuffle(rng, n)


def content_digest(doc: Document) -> str:
    """A digest of what the document says (title, sentences, entities with their mentions, relations with
    their evidence), leaving out where it was read from (id, index, source, split): a renamed or moved input
    gives the same digest. Compact JSON (C-encoded; ~0.1 ms a Re-DocRED document), UTF-8 with lone surrogates
    passed through, so any string serialises the same way on every worker and Python version."""
    content = [
        doc.title,
        doc.sents,
        [[e.type, e.kb_id, [(m.name, m.sent_id, m.start, m.end) for m in e.mentions]] for e in doc.entities],
        [(r.h, r.t, r.r, r.evidence) for r in doc.relations],
    ]
    text = json.dumps(content, ensure_ascii=False, check_circular=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def unwritten_relations(doc: Document, examples: Sequence[WriteExample]) -> tuple[int, int]:
    """How many of the document's relations `examples` (all of its sentences) write at no sentence, as
    (duplicate triple, no mention pair): the first have a qualifying mention pair at some sentence where they
    are considered, so every such pair's name-triple was already written there for another relation; the
    second have none (see the module's notes)."""
    written = {t.label_index for ex in examples for t in ex.triples}
    if len(written) == len(doc.relations):
        return 0, 0
    sents_of = [{m.sent_id for m in e.mentions} for e in doc.entities]
    duplicate = no_pair = 0
    for i, rel in enumerate(doc.relations):
        if i in written:
            continue
        ready = max(min(sents_of[rel.h]), min(sents_of[rel.t]))
        either = sents_of[rel.h] | sents_of[rel.t]
        considered = rel.evidence or range(len(doc.sents))
        if any(s >= ready and s in either for s in considered):
            duplicate += 1
        else:
            no_pair += 1
    return duplicate, no_pair


def build_write_examples(
    doc: Document,
    relation_labels: Mapping[str, str],
    rng: random.Random | None = None,
    seed: int = REFERENCE_SEED,
) -> list[WriteExample]:
    ref = doc.ref
    sentences = [" ".join(s) for s in doc.sents]
    # Per entity, its mentions as (sent_id, start, name) tuples: the pair loop below runs ~700 times a
    # document, and tuple unpacking is several times cheaper than attribute reads.
    mentions = [[(m.sent_id, m.start, m.name) for m in e.mentions] for e in doc.entities]
    sents_of = [{m[0] for m in ms} for ms in mentions]
    first_of = [min(s) for s in sents_of]
    relations = doc.relations
    # Per relation, once (each is considered at ~5 sentences): the size of its mention product, shuffled
    # wherever it is considered, and where a pair can qualify: from the sentence where both arguments have
    # been mentioned (`ready`) on, at a sentence that mentions one of them (`either`).
    sizes = [len(mentions[rel.h]) * len(mentions[rel.t]) for rel in relations]
    ready = [max(first_of[rel.h], first_of[rel.t]) for rel in relations]
    either = [sents_of[rel.h] | sents_of[rel.t] for rel in relations]
    examples = []
    pretext_parts: list[str] = []
    digest = None  # `content_digest`, made at the first sentence that needs it (only without `rng`)
    for sent_id, (focus, selected) in enumerate(
        zip(sentences, _selected_per_sentence(len(doc.sents), [r.evidence for r in relations]))
    ):
        example = WriteExample(ref, sent_id, " ".join(pretext_parts), focus)
        if selected:
            if rng is not None:
                pair_rng = rng
            else:
                if digest is None:
                    digest = content_digest(doc)
                # A string seed is hashed with SHA-512 by `random`: the same on every worker, run and Python.
                pair_rng = random.Random(f"{seed}:{digest}:{sent_id}")
            getrandbits = pair_rng.getrandbits
            placed: list[tuple[tuple[int, int], tuple[str, str, str], WriteTriple]] = []
            written: set[tuple[str, str, str]] = set()
            for label_index in selected:
                n = sizes[label_index]
                # The whole product is shuffled, qualifying or not, so the stream matches the reference.
                if sent_id < ready[label_index] or sent_id not in either[label_index]:
                    if n > 1:  # no pair can qualify here: `consume_shuffle`, inlined (~77 calls a document)
                        for m, k in _STEPS[n] if n < _N_STEPS else _steps(n):
                            while getrandbits(k) >= m:
                                pass
                    continue
                rel = relations[label_index]
                h, t, r = rel.h, rel.t, rel.r
                heads, tails = mentions[h], mentions[t]
                label = relation_labels[r]
                n_tails = len(tails)
                for idx in shuffled_indices(pair_rng, n) if n > 1 else (0,):
                    h_sent, h_start, h_name = heads[idx // n_tails]
                    t_sent, t_start, t_name = tails[idx % n_tails]
                    if h_sent > sent_id or t_sent > sent_id or (h_sent != sent_id and t_sent != sent_id):
                        continue
                    names = (h_name, label, t_name)
                    if names in written:
                        continue
                    written.add(names)
                    if h_sent == sent_id and t_sent == sent_id:
                        location = max((h_sent, h_start), (t_sent, t_start))
                    else:
                        location = (h_sent, h_start) if h_sent == sent_id else (t_sent, t_start)
                    placed.append((location, names, WriteTriple(h_name, label, t_name, h, t, r, label_index)))
                    break
            placed.sort(key=_location_then_names)
            example.triples = [p[2] for p in placed]
        examples.append(example)
        pretext_parts.append(focus)
    return examples


_location_then_names = operator.itemgetter(0, 1)
