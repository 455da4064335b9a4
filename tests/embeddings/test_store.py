"""Embedding HDF5 files: 2023 layout written chunked and atomically, resumed, read back; 2022 layout read."""
import h5py
import numpy as np
import pytest

from desed_task.embeddings import EmbeddingReader, EmbeddingWriter, embedding_file


def fake(n, start=0):
    rng = np.random.default_rng(start)
    return rng.standard_normal((n, 6, 5)).astype(np.float32), rng.standard_normal((n, 4)).astype(np.float32)


def test_2023_layout_round_trip(tmp_path):
    stems = [f"clip_{i}" for i in range(7)]
    path = embedding_file(tmp_path, "test")
    assert path.name == "devtest.hdf5"
    writer = EmbeddingWriter(path, stems, (6, 5), 4)
    frame, glob = fake(7)
    writer.write(stems[:4], frame[:4], glob[:4])
    assert not path.exists()  # nothing final before finish
    writer.write(stems[4:], frame[4:], glob[4:])
    writer.finish()
    assert path.is_file() and not path.with_name("devtest.hdf5.partial").exists()
    with h5py.File(path, "r") as file:  # what the official 2023 reader expects
        assert list(file["filenames"].asstr()[:]) == stems
        assert file["frame_embeddings"].shape == (7, 6, 5) and file["frame_embeddings"].chunks == (1, 6, 5)
        assert file["global_embeddings"].shape == (7, 4)
        assert "n_written" not in file.attrs
    reader = EmbeddingReader(path)
    assert reader.layout == "2023" and reader.stems == set(stems)
    np.testing.assert_array_equal(reader.read("clip_5", "frame"), frame[5])
    np.testing.assert_array_equal(reader.read("clip_2", "global"), glob[2])
    with pytest.raises(ValueError, match="in order"):
        EmbeddingWriter(tmp_path / "x.hdf5", stems, (6, 5), 4).write(stems[1:2], frame[:1], glob[:1])


def test_interrupted_writer_resumes(tmp_path):
    stems = [f"c{i}" for i in range(5)]
    frame, glob = fake(5)
    path = tmp_path / "weak_train.hdf5"
    first = EmbeddingWriter(path, stems, (6, 5), 4)
    first.write(stems[:2], frame[:2], glob[:2])
    first.close()  # interrupted
    resumed = EmbeddingWriter(path, stems, (6, 5), 4)
    assert resumed.n_done == 2
    resumed.write(stems[2:], frame[2:], glob[2:])
    resumed.finish()
    np.testing.assert_array_equal(EmbeddingReader(path).read("c1", "frame"), frame[1])
    other = EmbeddingWriter(tmp_path / "b.hdf5", stems, (6, 5), 4)
    other.write(stems[:1], frame[:1], glob[:1])
    other.close()
    assert EmbeddingWriter(tmp_path / "b.hdf5", ["z", *stems[1:]], (6, 5), 4).n_done == 0  # other clips: restart
    with pytest.raises(RuntimeError, match="0 of 5"):
        EmbeddingWriter(tmp_path / "c.hdf5", stems, (6, 5), 4).finish()


def test_2022_attribute_layout_is_read(tmp_path):
    """The 2022 writer: vlen rows, frame (N, D) of length-T vectors, row of each stem in the attributes."""
    path = tmp_path / "devtest.hdf5"
    frame, glob = fake(3)
    with h5py.File(path, "w") as file:
        vlen = h5py.vlen_dtype(np.float32)
        frames = file.create_dataset("frame_embeddings", (3, 6), dtype=vlen)
        globals_ = file.create_dataset("global_embeddings", (3,), dtype=vlen)
        for row, stem in enumerate(["b", "a", "c"]):
            for d in range(6):
                frames[row, d] = frame[row, d]
            globals_[row] = glob[row]
            frames.attrs[stem] = row
            globals_.attrs[stem] = row
    reader = EmbeddingReader(path)
    assert reader.layout == "2022" and reader.stems == {"a", "b", "c"}
    np.testing.assert_array_equal(reader.read("a", "frame"), frame[1])
    np.testing.assert_array_equal(reader.read("c", "global"), glob[2])


def test_missing_file_and_bad_kind(tmp_path):
    with pytest.raises(FileNotFoundError, match="desed_task.embeddings.extract"):
        EmbeddingReader(tmp_path / "nope.hdf5")
    with pytest.raises(ValueError, match="unknown split"):
        embedding_file(tmp_path, "train")
