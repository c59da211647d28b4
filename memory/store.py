"""`TripleStore`: the entity, relation and triple tables of the memory (docs/method.md §2.1), in one SQLite file.

What it does: the reference's three tables and uniqueness rules (an entity or relation string is stored once;
a repeated triple is a no-op), batched writes that are all-or-nothing, deletion, an `overwrite` write mode
(the paper's knowledge editing: a new triple replaces the stored ones with the same subject and relation),
and the row lookups the query semantics need. Triple ids never change and are never reused, so callers
can exclude ids.

Durability: a file store runs in WAL mode with `synchronous=NORMAL`: a killed process never leaves half a
batch (a batch is one transaction), and only a power loss can drop the last committed batches.

What it doesn't do: embeddings and vector search (`memory.embedding_memory`), query thresholds. One writer
at a time per file (each batch holds SQLite's write lock); any number of readers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from memllm.memory.errors import MemoryUsageError

WriteMode = Literal["insert", "overwrite"]
Triple = tuple[str, str, str]
# new (id, string) rows of one batch, handed to `before_commit` (the embedding memory embeds them there)
NewRows = list[tuple[int, str]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (id INTEGER PRIMARY KEY, entity TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS relation_types (id INTEGER PRIMARY KEY, relation_type TEXT NOT NULL UNIQUE);
-- AUTOINCREMENT: a deleted triple's id is never handed out again (callers keep ids to exclude)
CREATE TABLE IF NOT EXISTS triples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ent_s_id INTEGER NOT NULL,
    rel_t_id INTEGER NOT NULL,
    ent_o_id INTEGER NOT NULL,
    UNIQUE (ent_s_id, rel_t_id, ent_o_id)
);
CREATE INDEX IF NOT EXISTS triples_by_object ON triples (ent_o_id, rel_t_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_CHUNK = 500  # bound parameters per IN (...) query, well below SQLite's limit


@dataclass(slots=True)
class AddResult:
    added: int = 0  # triples inserted (repeats of stored triples are not counted)
    new_entities: NewRows = field(default_factory=list)
    new_relations: NewRows = field(default_factory=list)
    deleted_ids: list[int] = field(default_factory=list)  # triples replaced in overwrite mode


def check_triple(triple: Any, where: str = "") -> Triple:
    """`triple` as (head, relation, tail) of non-empty strings, or a MemoryUsageError saying what is wrong."""
    if not isinstance(triple, (tuple, list)) or len(triple) != 3:
        raise MemoryUsageError(f"a triple must be (head, relation, tail), got {triple!r}{where}")
    for part in triple:
        if not isinstance(part, str) or not part.strip():
            raise MemoryUsageError(f"triple {tuple(triple)!r}{where} has an empty or non-string field")
    return (triple[0], triple[1], triple[2])


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class TripleStore:
    """The tables in `path` (a file, created if missing) or in RAM (`path=None`)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None and not self.path.parent.is_dir():
            raise MemoryUsageError(f"no such directory: {self.path.parent}")
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves so one batch is exactly one transaction
            self._db = sqlite3.connect(str(self.path) if self.path else ":memory:", isolation_level=None)
            if self.path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA cache_size=-131072")  # 128 MiB page cache: lookups stay in RAM
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise MemoryUsageError(f"{self.path} is not a memory database ({e})") from None

    # --- writes ----------------------------------------------------------------------------------------

    def add_triples(
        self,
        triples: Iterable[Sequence[str]],
        mode: WriteMode = "insert",
        before_commit: Callable[[NewRows, NewRows], None] | None = None,
    ) -> AddResult:
        """Store a batch of (head, relation, tail) in one transaction: all of it or, on any error, none.

        `overwrite` first deletes the stored triples that share a (head, relation) with the batch but have
        another tail (the batch's own triples never replace each other: a person has several children).
        `before_commit(new_entities, new_relations)` runs inside the transaction; if it raises, nothing
        is stored.
        """
        if mode not in ("insert", "overwrite"):
            raise MemoryUsageError(f"write mode must be 'insert' or 'overwrite', got {mode!r}")
        batch = [check_triple(t, f" (item {i} of the batch)") for i, t in enumerate(triples)]
        result = AddResult()
        if not batch:
            return result
        self._db.execute("BEGIN IMMEDIATE")  # take the write lock now, not at the first INSERT
        try:
            ent, result.new_entities = self._ensure("entities", "entity", [x for h, _, t in batch for x in (h, t)])
            rel, result.new_relations = self._ensure("relation_types", "relation_type", [r for _, r, _ in batch])
            rows = list(dict.fromkeys((ent[h], rel[r], ent[t]) for h, r, t in batch))
            if mode == "overwrite":
                result.deleted_ids = self._delete_conflicts(rows)
            cur = self._db.executemany(
                "INSERT OR IGNORE INTO triples (ent_s_id, rel_t_id, ent_o_id) VALUES (?, ?, ?)", rows
            )
            result.added = cur.rowcount
            if before_commit is not None:
                before_commit(result.new_entities, result.new_relations)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return result

    def _ensure(self, table: str, column: str, names: list[str]) -> tuple[dict[str, int], NewRows]:
        """Ids of `names` in `table`, inserting the missing ones (inside the caller's transaction)."""
        distinct = list(dict.fromkeys(names))  # first-appearance order: new ids do not depend on hashing
        ids = self._ids(table, column, distinct)
        missing = [n for n in distinct if n not in ids]
        if not missing:
            return ids, []
        (top,) = self._db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
        # explicit ids: the new rows are exactly top+1..top+n, so the vector index can use them as labels
        new = [(top + 1 + i, n) for i, n in enumerate(missing)]
        self._db.executemany(f"INSERT INTO {table} (id, {column}) VALUES (?, ?)", new)
        ids.update((n, i) for i, n in new)
        return ids, new

    def _ids(self, table: str, column: str, names: Sequence[str]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for part in _chunks(names):
            sql = f"SELECT {column}, id FROM {table} WHERE {column} IN ({','.join('?' * len(part))})"
            ids.update(self._db.execute(sql, part))
        return ids

    def _delete_conflicts(self, rows: list[tuple[int, int, int]]) -> list[int]:
        keep: dict[tuple[int, int], set[int]] = {}
        for s, r, o in rows:
            keep.setdefault((s, r), set()).add(o)
        doomed = [
            tid
            for (s, r), objects in keep.items()
            for tid, o in self._db.execute(
                "SELECT id, ent_o_id FROM triples WHERE ent_s_id = ? AND rel_t_id = ?", (s, r)
            )
            if o not in objects
        ]
        self._delete_ids(doomed)
        return doomed

    def _delete_ids(self, ids: Sequence[int]) -> int:
        cur = self._db.executemany("DELETE FROM triples WHERE id = ?", [(i,) for i in ids])
        return cur.rowcount

    def delete_triples(self, ids: Iterable[int]) -> int:
        """Delete triples by id (unknown ids are ignored); returns how many were deleted.

        Entity and relation rows stay (as in the reference, which never deletes them): they cost one
        vector each and keep their ids, so the vector index never needs a removal.
        """
        self._db.execute("BEGIN IMMEDIATE")
        try:
            n = self._delete_ids([int(i) for i in ids])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return n

    def delete(self, triples: Iterable[Sequence[str]]) -> int:
        """Delete triples by their strings (absent ones are ignored)."""
        ids = [self.triple_id(*check_triple(t)) for t in triples]
        return self.delete_triples(i for i in ids if i is not None)

    # --- reads -----------------------------------------------------------------------------------------

    def entity_ids(self, names: Sequence[str]) -> dict[str, int]:
        return self._ids("entities", "entity", list(dict.fromkeys(names)))

    def relation_ids(self, names: Sequence[str]) -> dict[str, int]:
        return self._ids("relation_types", "relation_type", list(dict.fromkeys(names)))

    def entity_names(self, ids: Iterable[int]) -> dict[int, str]:
        return self._names("entities", "entity", ids)

    def relation_names(self, ids: Iterable[int]) -> dict[int, str]:
        return self._names("relation_types", "relation_type", ids)

    def _names(self, table: str, column: str, ids: Iterable[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for part in _chunks(list(dict.fromkeys(int(i) for i in ids))):
            sql = f"SELECT id, {column} FROM {table} WHERE id IN ({','.join('?' * len(part))})"
            out.update(self._db.execute(sql, part))
        return out

    def rows_for_pair(self, entity_id: int, relation_id: int, tail_query: bool, limit: int) -> list[tuple[int, int]]:
        """(triple id, id of the unknown side) of up to `limit` triples with this known entity and relation.

        A tail query `(s, r, ?)` matches the subject; a head query `(?, r, o)` matches the object. Like the
        reference's SQL there is no ORDER BY: rows come in index order (stable for a given store).
        """
        if tail_query:
            sql = "SELECT id, ent_o_id FROM triples WHERE ent_s_id = ? AND rel_t_id = ? LIMIT ?"
        else:
            sql = "SELECT id, ent_s_id FROM triples WHERE ent_o_id = ? AND rel_t_id = ? LIMIT ?"
        return self._db.execute(sql, (entity_id, relation_id, limit)).fetchall()

    def exact_rows(self, known: str, relation: str, tail_query: bool, limit: int) -> list[tuple[int, str]]:
        """`rows_for_pair` by exact strings, with the unknown side's name: one indexed SQL statement."""
        known_col, other_col = ("ent_s_id", "ent_o_id") if tail_query else ("ent_o_id", "ent_s_id")
        sql = (
            f"SELECT t.id, x.entity FROM entities k JOIN relation_types r ON r.relation_type = ? "
            f"JOIN triples t ON t.{known_col} = k.id AND t.rel_t_id = r.id "
            f"JOIN entities x ON x.id = t.{other_col} WHERE k.entity = ? LIMIT ?"
        )
        return self._db.execute(sql, (relation, known, limit)).fetchall()

    def triple_id(self, head: str, relation: str, tail: str) -> int | None:
        row = self._db.execute(
            "SELECT t.id FROM triples t JOIN entities s ON s.id = t.ent_s_id "
            "JOIN relation_types r ON r.id = t.rel_t_id JOIN entities o ON o.id = t.ent_o_id "
            "WHERE s.entity = ? AND r.relation_type = ? AND o.entity = ?",
            (head, relation, tail),
        ).fetchone()
        return row[0] if row else None

    def conflicting_ids(self, head: str, relation: str, tail: str) -> list[int]:
        """Ids of stored triples with this head and relation but another tail (what `overwrite` deletes).

        The zsRE evaluation excludes these at read time instead of deleting them (docs/method.md §10.4).
        """
        return [
            i
            for i, other in self.exact_rows(head, relation, tail_query=True, limit=-1)  # LIMIT -1: no limit
            if other != tail
        ]

    def triples(self, ids: Iterable[int] | None = None) -> Iterator[tuple[int, str, str, str]]:
        """(id, head, relation, tail) of the given triples, or of all of them in id order."""
        sql = (
            "SELECT t.id, s.entity, r.relation_type, o.entity FROM triples t "
            "JOIN entities s ON s.id = t.ent_s_id JOIN relation_types r ON r.id = t.rel_t_id "
            "JOIN entities o ON o.id = t.ent_o_id"
        )
        if ids is None:
            yield from self._db.execute(sql + " ORDER BY t.id")
            return
        for part in _chunks(list(ids)):
            yield from self._db.execute(sql + f" WHERE t.id IN ({','.join('?' * len(part))})", part)

    def rows_after(self, table: Literal["entities", "relation_types"], after_id: int) -> list[tuple[int, str]]:
        """(id, string) of the rows with id > after_id, in id order (to bring a vector index up to date)."""
        column = "entity" if table == "entities" else "relation_type"
        return self._db.execute(f"SELECT id, {column} FROM {table} WHERE id > ? ORDER BY id", (after_id,)).fetchall()

    def max_id(self, table: Literal["entities", "relation_types"]) -> int:
        return self._db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]

    def counts(self) -> dict[str, int]:
        return {
            t: self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("entities", "relation_types", "triples")
        }

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM triples").fetchone()[0]

    # --- metadata (the embedding memory records its embedder here) -------------------------------------

    def get_meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TripleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
