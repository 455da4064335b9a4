"""Writing and indexing per-clip embeddings: our 2023-layout writer against the 2022 attribute index.

    PYTHONPATH=. python benchmarks/embeddings_hdf5.py [--clips 10000] [--attribute_clips 2000] [--batch 32]

Writes ``--clips`` clips (frame (D, T), global (G,)) in batches with `EmbeddingWriter`, then builds the
stem index with `EmbeddingReader` and reads every clip once; then writes ``--attribute_clips`` clips the
2022 way (one HDF5 attribute per clip on two datasets) and builds its index. Embedding sizes are small
(``--frame_dim``/``--frames``) so the figures measure the file structure, not the disk bandwidth.
Prints the timings and a JSON line.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from desed_task.embeddings import EmbeddingReader, EmbeddingWriter


def ours(folder: Path, n: int, batch: int, frame_shape, global_dim) -> dict:
    stems = [f"Y{i:011d}_30.000_40.000" for i in range(n)]
    rng = np.random.default_rng(0)
    frame = rng.standard_normal((batch, *frame_shape)).astype(np.float32)
    glob = rng.standard_normal((batch, global_dim)).astype(np.float32)
    start = time.perf_counter()
    writer = EmbeddingWriter(folder / "ours.hdf5", stems, frame_shape, global_dim)
    for i in range(0, n, batch):
        chunk = stems[i:i + batch]
        writer.write(chunk, frame[:len(chunk)], glob[:len(chunk)])
    writer.finish()
    written = time.perf_counter()
    reader = EmbeddingReader(folder / "ours.hdf5")
    indexed = time.perf_counter()
    for stem in stems:
        reader.read(stem, "frame")
    read = time.perf_counter()
    return {"clips": n, "write_s": written - start, "index_s": indexed - written, "read_all_s": read - indexed}


def attributes_2022(folder: Path, n: int, frame_shape, global_dim) -> dict:
    """The 2022 extraction's structure: vlen rows and `attrs[stem] = row` on both datasets."""
    rng = np.random.default_rng(0)
    frame = rng.standard_normal(frame_shape).astype(np.float32)
    glob = rng.standard_normal(global_dim).astype(np.float32)
    start = time.perf_counter()
    with h5py.File(folder / "attrs.hdf5", "w") as file:
        vlen = h5py.vlen_dtype(np.float32)
        frames = file.create_dataset("frame_embeddings", (n, frame_shape[0]), dtype=vlen)
        globals_ = file.create_dataset("global_embeddings", (n,), dtype=vlen)
        for row in range(n):
            stem = f"Y{row:011d}_30.000_40.000"
            frames[row] = list(frame)
            globals_[row] = glob
            frames.attrs[stem] = row
            globals_.attrs[stem] = row
    written = time.perf_counter()
    EmbeddingReader(folder / "attrs.hdf5")
    return {"clips": n, "write_s": written - start, "index_s": time.perf_counter() - written}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=10000)
    parser.add_argument("--attribute_clips", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frame_dim", type=int, default=32)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--global_dim", type=int, default=32)
    args = parser.parse_args()
    shape = (args.frame_dim, args.frames)
    with tempfile.TemporaryDirectory() as folder:
        result = {"ours_2023_layout": ours(Path(folder), args.clips, args.batch, shape, args.global_dim)}
        if args.attribute_clips:
            result["attributes_2022_layout"] = attributes_2022(Path(folder), args.attribute_clips, shape, args.global_dim)
    for name, values in result.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()))
    print(json.dumps({"benchmark": "embeddings_hdf5", "frame_shape": shape, **result}))


if __name__ == "__main__":
    main()
