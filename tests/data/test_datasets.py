import numpy as np
import pandas as pd
import pytest
import torch

from desed_task.data.datasets import StronglyAnnotatedSet, UnlabeledSet, WeaklyAnnotatedSet, split_weak

from .conftest import write_tone


@pytest.fixture
def folder(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    write_tone(audio / "short.wav", seconds=6.0)
    write_tone(audio / "long.wav", seconds=12.0, sr=44100, channels=2)
    write_tone(audio / "exact.wav", seconds=10.0)
    return audio


def _events():
    return pd.DataFrame({"filename": ["short.wav", "long.wav", "exact.wav"], "onset": [1.0, 10.5, np.nan],
                         "offset": [2.0, 11.5, np.nan], "event_label": ["Dog", "Cat", np.nan]})


def test_strong_items_shape_padding_and_labels(folder, encoder):
    dataset = StronglyAnnotatedSet(folder, _events(), encoder)
    waveform, labels, valid, file_id = dataset[0]
    assert file_id == "short.wav"
    assert waveform.dtype == torch.float32 and waveform.shape == (160000,)
    assert torch.all(waveform[96000:] == 0) and waveform[:96000].abs().max() > 0.4
    assert labels.shape == (10, 156) and labels.dtype == torch.float32
    assert valid.dtype == torch.bool and valid.sum() == int(np.ceil(6 * 15.625))
    dog = labels[encoder.labels.index("Dog")]
    assert torch.equal(torch.nonzero(dog).flatten(), torch.arange(15, 32))
    _, exact_labels, exact_valid, _ = dataset[2]
    assert exact_labels.sum() == 0 and exact_valid.all()


def test_long_clip_is_resampled_and_cropped(folder, encoder):
    fixed = StronglyAnnotatedSet(folder, _events(), encoder)
    waveform, labels, valid, _ = fixed[1]
    assert waveform.shape == (160000,) and valid.all()
    assert labels.sum() == 0  # the Cat event lies after the deterministic 10 s window
    cropped = StronglyAnnotatedSet(folder, _events(), encoder, random_crop=True)
    torch.manual_seed(0)
    seen_cat = [cropped[1][1][encoder.labels.index("Cat")].sum().item() for _ in range(20)]
    assert max(seen_cat) > 0 and all(s <= np.ceil(1.5 * 15.625) for s in seen_cat)


def test_weak_labels_repeat_over_frames_and_unlabeled_is_zero(folder, encoder):
    weak = pd.DataFrame({"filename": ["short.wav", "exact.wav"], "event_labels": ["Dog,Speech", "Cat"]})
    dataset = WeaklyAnnotatedSet(folder, weak, encoder)
    _, labels, _, file_id = dataset[0]
    assert file_id == "short.wav"
    assert torch.all(labels[encoder.labels.index("Dog")] == 1) and labels.sum() == 2 * 156
    assert encoder.decode_weak(labels.amax(-1).numpy()) == ["Dog", "Speech"]
    unlabeled = UnlabeledSet(folder, encoder)
    assert len(unlabeled) == 3 and all(unlabeled[i][1].sum() == 0 for i in range(3))
    assert sorted(unlabeled[i][3] for i in range(3)) == ["exact.wav", "long.wav", "short.wav"]


def test_weak_split_is_seeded_and_partitions(tmp_path):
    tsv = tmp_path / "weak.tsv"
    pd.DataFrame({"filename": [f"{i}.wav" for i in range(50)], "event_labels": ["Dog"] * 50}).to_csv(tsv, sep="\t", index=False)
    train, valid = split_weak(tsv, 0.9, seed=42)
    again, _ = split_weak(tsv, 0.9, seed=42)
    assert len(train) == 45 and len(valid) == 5 and list(train.filename) == list(again.filename)
    assert not set(train.filename) & set(valid.filename)
    reference = pd.read_csv(tsv, sep="\t").sample(frac=0.9, random_state=42)
    assert list(train.filename) == list(reference.filename)
    assert valid.attrs["source"] == str(tsv)
