import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from desed_task.data.classes import DESED_CLASSES
from desed_task.data.mini import (CLASS_SHARES, MEDIAN_DURATION, apply_mini_config, ensure_mini_dataset,
                                  generate_mini_desed, sample_annotations, strong_val_size)

from .conftest import TINY_SIZES


def _digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def test_same_seed_gives_identical_bytes(tmp_path):
    sizes = dict(n_synth=2, n_weak=2, n_unlabeled=1, n_synth_val=1, n_test=2, workers=1)
    generate_mini_desed(tmp_path / "a", seed=11, **sizes)
    generate_mini_desed(tmp_path / "b", seed=11, **sizes)
    generate_mini_desed(tmp_path / "c", seed=12, **sizes)
    first, second, other = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert first == second and len(first) == 2 + 2 + 1 + 1 + 2 + 6
    assert first != other


def test_tsv_formats_are_desed_ones(tiny_mini):
    _, paths = tiny_mini
    strong_text = open(paths["synth_val_tsv"]).read().splitlines()
    assert strong_text[0] == "filename\tonset\toffset\tevent_label"
    strong = pd.read_csv(paths["test_tsv"], sep="\t")
    assert set(strong.dropna().event_label) <= set(DESED_CLASSES)
    assert (strong.dropna().onset < strong.dropna().offset).all()
    weak_lines = open(paths["weak_tsv"]).read().splitlines()
    assert weak_lines[0] == "filename\tevent_labels" and len(weak_lines) == TINY_SIZES["n_weak"] + 1
    assert all(set(line.split("\t")[1].split(",")) <= set(DESED_CLASSES) for line in weak_lines[1:])
    durations = pd.read_csv(paths["test_dur"], sep="\t")
    assert list(durations.columns) == ["filename", "duration"] and len(durations) == TINY_SIZES["n_test"]
    for name, duration in zip(durations.filename, durations.duration):
        assert abs(sf.info(f"{paths['test_folder']}/{name}").duration - duration) < 1e-3


def test_empty_clips_have_empty_fields():
    frame = sample_annotations(200, seed=1)
    empty = frame[frame.event_label.isna()]
    assert len(empty) > 0 and empty.onset.isna().all() and empty.offset.isna().all()


def test_sample_rates_and_folders(tiny_mini):
    _, paths = tiny_mini
    rates = {key: {sf.info(str(p)).samplerate for p in Path(paths[key]).glob("*.wav")}
             for key in ("synth_folder_44k", "weak_folder_44k", "unlabeled_folder", "synth_val_folder", "test_folder")}
    assert rates == {"synth_folder_44k": {44100}, "weak_folder_44k": {44100}, "unlabeled_folder": {16000},
                     "synth_val_folder": {16000}, "test_folder": {16000}}


def test_annotation_statistics_match_desed():
    events = sample_annotations(3000, seed=0).dropna()
    assert 3.0 <= len(events) / 3000 <= 4.4
    shares = events.event_label.value_counts(normalize=True)
    total = sum(CLASS_SHARES.values())
    for label, share in CLASS_SHARES.items():
        assert abs(shares[label] - share / total) < 0.02 + 0.15 * share, label
    medians = (events.offset - events.onset).groupby(events.event_label).median()
    for label, median in MEDIAN_DURATION.items():
        assert abs(medians[label] - median) <= 0.12 * median, label
    assert events.offset.max() <= 10.0


def test_classes_differ_in_spectrum():
    """Each class synthesises a distinct average spectrum (a rough proxy for separability)."""
    from desed_task.data.synth_events import synthesize_event
    rng = np.random.default_rng(0)
    profiles = []
    for label in DESED_CLASSES:
        audio = np.concatenate([synthesize_event(label, 16384, 16000, rng) for _ in range(4)])
        spectrum = np.abs(np.fft.rfft(audio.reshape(-1, 1024) * np.hanning(1024), axis=1)).mean(0)
        bands = np.log(np.add.reduceat(spectrum ** 2, np.geomspace(1, 512, 25).astype(int)) + 1e-9)
        profiles.append(bands - bands.mean())
    profiles = np.array(profiles)
    distances = np.linalg.norm(profiles[:, None] - profiles[None], axis=-1)
    assert distances[~np.eye(10, dtype=bool)].min() > 3.0


def test_command_line_writes_the_dataset(tmp_path, capsys):
    from desed_task.data.mini import main, mini_config_paths
    main(["--out", str(tmp_path), "--seed", "4", "--n_synth", "1", "--n_weak", "1", "--n_unlabeled", "1",
          "--n_synth_val", "1", "--n_test", "1", "--workers", "1"])
    paths = mini_config_paths(tmp_path)
    assert "mini DESED written" in capsys.readouterr().out
    assert Path(paths["synth_tsv"]).is_file() and len(list(Path(paths["weak_folder_44k"]).glob("*.wav"))) == 1


REPO = Path(__file__).resolve().parents[2]
DEMO_CONF = REPO / "confs/dcase2022_task4_baseline/demo.yaml"
DEFAULT_CONF = REPO / "confs/dcase2022_task4_baseline/default.yaml"


def _mini_override(root) -> str:
    return "data.mini={" + f"out_dir: {root}, seed: 3, workers: 2, " + ", ".join(
        f"{key}: {value}" for key, value in TINY_SIZES.items()) + "}"


def test_issue13_item1_data_paths_given_with_mini_are_an_error_naming_the_keys(tiny_mini):
    from desed_task.data.mini import resolve_config
    root, _ = tiny_mini
    overrides = [_mini_override(root), "data.weak_folder=/real/desed/weak_16k", "data.weak_tsv=/real/desed/weak.tsv"]
    with pytest.raises(ValueError) as error:
        resolve_config(str(DEMO_CONF), overrides)
    message = str(error.value)
    assert "data.weak_folder=/real/desed/weak_16k" in message and "data.weak_tsv=/real/desed/weak.tsv" in message
    assert "data.mini=null" in message and "data.synth_tsv" not in message


def test_mini_given_on_the_command_line_replaces_the_config_files_paths_with_a_warning(tiny_mini, caplog):
    from desed_task.data.mini import resolve_config
    root, paths = tiny_mini
    with caplog.at_level(logging.WARNING, logger="desed_task.data.mini"):
        resolved = resolve_config(str(DEFAULT_CONF), [_mini_override(root)])
    assert {key: resolved["data"][key] for key in paths} == paths
    assert "replaces the config file's 21 data paths" in caplog.text and "data.weak_folder_44k" in caplog.text
    with pytest.raises(ValueError, match=r"data paths: data\.weak_folder=/real/weak_16k\. To train"):
        resolve_config(str(DEFAULT_CONF), [_mini_override(root), "data.weak_folder=/real/weak_16k"])


def test_a_resolved_mini_config_is_accepted_again(tiny_mini):
    root, _ = tiny_mini
    config = {"data": {"mini": {"out_dir": str(root), "seed": 3, "workers": 2, **TINY_SIZES}}}
    resolved = apply_mini_config(config)
    assert apply_mini_config(resolved, file_config=resolved) == resolved


def test_strong_real_split_is_written_when_asked(tmp_path):
    sizes = dict(n_synth=1, n_weak=1, n_unlabeled=1, n_synth_val=1, n_test=1, workers=1)
    without = generate_mini_desed(tmp_path / "a", seed=3, **sizes)
    assert not Path(without["strong_tsv"]).exists() and not Path(without["strong_folder"]).exists()
    assert not Path(without["strong_val_tsv"]).exists()
    paths = generate_mini_desed(tmp_path / "b", seed=3, n_strong=3, n_strong_val=0, **sizes)
    strong = pd.read_csv(paths["strong_tsv"], sep="\t")
    files = sorted(p.name for p in Path(paths["strong_folder"]).glob("*.wav"))
    assert files == sorted(set(strong.filename)) and len(files) == 3
    assert {sf.info(str(Path(paths["strong_folder"]) / f)).samplerate for f in files} == {16000}
    assert not Path(paths["strong_val_tsv"]).exists()
    # the other sets are unchanged by the extra split
    assert _digest(tmp_path / "a") == {k: v for k, v in _digest(tmp_path / "b").items() if "strong" not in k}


def test_strong_real_validation_split_leaves_the_other_files_byte_identical(tmp_path):
    sizes = dict(n_synth=1, n_weak=1, n_unlabeled=1, n_synth_val=1, n_test=1, n_strong=9, workers=1)
    generate_mini_desed(tmp_path / "a", seed=3, n_strong_val=0, **sizes)
    paths = generate_mini_desed(tmp_path / "b", seed=3, **sizes)  # default: 9 / 8 rounded up
    assert strong_val_size(9) == 2 and strong_val_size(0) == 0 and strong_val_size(9, 5) == 5
    assert paths["strong_val_folder"] == paths["strong_folder"]  # the official layout: one audio folder
    valid = pd.read_csv(paths["strong_val_tsv"], sep="\t")
    durations = pd.read_csv(paths["strong_val_dur"], sep="\t")
    names = sorted(set(valid.filename))
    assert len(names) == 2 and sorted(durations.filename) == names
    assert not set(names) & set(pd.read_csv(paths["strong_tsv"], sep="\t").filename)
    for name, duration in zip(durations.filename, durations.duration):
        assert abs(sf.info(f"{paths['strong_val_folder']}/{name}").duration - duration) < 1e-3
    new_files = {f"audio/train/strong_label_real_16k/{name}" for name in names}
    new_files |= {"metadata/train/audioset_strong_val.tsv", "metadata/train/audioset_strong_val_dur.tsv"}
    with_split = _digest(tmp_path / "b")
    assert set(with_split) - set(_digest(tmp_path / "a")) == new_files
    assert _digest(tmp_path / "a") == {k: v for k, v in with_split.items() if k not in new_files}


def test_a_mini_dataset_from_before_the_strong_validation_split_is_regenerated(tmp_path):
    sizes = dict(n_synth=1, n_weak=1, n_unlabeled=1, n_synth_val=1, n_test=1, n_strong=2)
    generate_mini_desed(tmp_path, seed=3, n_strong_val=0, workers=1, **sizes)
    (tmp_path / ".mini_complete.json").write_text(json.dumps({"seed": 3, **dict(sorted(sizes.items()))}))
    paths = ensure_mini_dataset(tmp_path, seed=3, workers=1, **sizes)
    assert len(pd.read_csv(paths["strong_val_tsv"], sep="\t").filename.unique()) == 1
    assert json.loads((tmp_path / ".mini_complete.json").read_text())["n_strong_val"] == 1


def test_default_sizes_and_spelled_out_sizes_share_one_dataset(monkeypatch, tmp_path):
    """`data.mini: {seed, out_dir}` (benchmarks) and the demo's explicit sizes must not regenerate each other's data."""
    import desed_task.data.mini as mini

    recipes = []
    monkeypatch.setattr(mini, "ensure_generated", lambda root, name, recipe, generate: recipes.append(recipe) or root)
    ensure_mini_dataset(tmp_path, seed=0)
    ensure_mini_dataset(tmp_path, seed=0, n_synth=300, n_weak=150, n_unlabeled=300, n_synth_val=100, n_test=100)
    ensure_mini_dataset(tmp_path, seed=0, n_synth=10)
    assert recipes[0] == recipes[1] == {"seed": 0, "n_synth": 300, "n_synth_val": 100, "n_test": 100,
                                        "n_unlabeled": 300, "n_weak": 150}
    assert recipes[2] == {**recipes[0], "n_synth": 10}
