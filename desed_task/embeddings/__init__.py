"""Pretrained-model embeddings: HDF5 storage (DCASE 2022 and 2023 layouts), extraction, dataset wrapper."""
from desed_task.embeddings.store import (
    EMBEDDING_FILES,
    EmbeddingReader,
    EmbeddingWriter,
    embedding_file,
)

__all__ = ["EMBEDDING_FILES", "EmbeddingReader", "EmbeddingWriter", "embedding_file"]
