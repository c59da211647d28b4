"""Data contracts: documents, example records, pyarrow schemas and the MemLLM API strings (pyarrow only)."""

from memllm.schemas.api import Query
from memllm.schemas.document import Document, Entity, Mention, Relation
from memllm.schemas.records import (
    DOCUMENTS_SCHEMA,
    MEMORY_READ_SCHEMA,
    MEMORY_WRITE_SCHEMA,
    TABLE_SCHEMAS,
    DocRef,
    ReadExample,
    WriteExample,
    WriteTriple,
)

__all__ = [
    "DOCUMENTS_SCHEMA",
    "MEMORY_READ_SCHEMA",
    "MEMORY_WRITE_SCHEMA",
    "TABLE_SCHEMAS",
    "DocRef",
    "Document",
    "Entity",
    "Mention",
    "Query",
    "ReadExample",
    "Relation",
    "WriteExample",
    "WriteTriple",
]
