"""Detector correctness: events at the right times in a long file, resampled/stereo input, thresholds, precision."""
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly
from torch import nn

from desed_task.data.classes import DESED_CLASSES
from desed_task.data.encoder import ManyHotEncoder
from desed_task.evaluation import decode_strong_scores, scores_to_detections
from desed_task.features.mel import mel_filterbank
from desed_task.inference import AudioInputError, Detector, Skipped, detect_file, parse_thresholds
from desed_task.training.sed import SEDTask
from desed_task.utils.config import load_config

SAMPLE_RATE = 16000
FRAME = 0.064
BANDS = 12  # mel bins per class of the 128-band frontend


class BandEnergy(nn.Module):
    """A model with no context: class c's score in an output frame is high when the mean dB log-mel of its
    4 mel frames peaks above 10 dB in mel bins [12 c, 12 c + 12). Any misplaced window shows as a time shift."""

    def forward(self, features):
        frames = features.shape[-1] // 4 * 4
        pooled = features[..., :frames].unflatten(-1, (-1, 4)).mean(-1)  # (B, mels, T)
        bands = pooled[:, :BANDS * 10].unflatten(1, (10, BANDS)).amax(2)  # (B, 10, T)
        strong = torch.sigmoid((bands - 10) / 2)
        return strong, strong.amax(-1)


class BandEnergyTask(SEDTask):
    def build_student(self):
        return BandEnergy()

    def detect(self, features, model, embeddings=None):
        return model(features)


def band_frequency(label: str) -> float:
    """A frequency at the centre of the class's mel bins (128 HTK bands, 0-8 kHz)."""
    bank = mel_filterbank(1025, 0, 8000, 128, SAMPLE_RATE)
    index = DESED_CLASSES.index(label) * BANDS + BANDS // 2
    return float(bank[:, index].argmax()) * SAMPLE_RATE / 2048


def tone_track(events, seconds: float) -> np.ndarray:
    time = np.arange(int(round(seconds * SAMPLE_RATE))) / SAMPLE_RATE
    audio = 1e-4 * np.random.default_rng(0).standard_normal(len(time))
    for label, onset, offset in events:
        inside = (time >= onset) & (time < offset)
        fade = np.clip(np.minimum(time[inside] - onset, offset - time[inside]) / 0.005, 0, 1)  # 5 ms ramps, no clicks
        audio[inside] += 0.3 * fade * np.sin(2 * np.pi * band_frequency(label) * time[inside])
    return audio.astype(np.float32)


EVENTS = [("Alarm_bell_ringing", 0.0, 0.517), ("Dog", 3.217, 5.5), ("Cat", 9.9, 10.43), ("Speech", 29.95, 31.2),
          ("Frying", 44.444, 52.01), ("Blender", 19.3, 24.8), ("Vacuum_cleaner", 58.0, 61.3)]


@pytest.fixture(scope="module")
def band_task():
    return BandEnergyTask(load_config("confs/dcase2022_task4_baseline/default.yaml")).eval()


def whole_file_detections(task, audio: np.ndarray) -> pd.DataFrame:
    """The band model on the file's log-mel in one piece (no windows), decoded by the evaluation package."""
    with torch.no_grad():
        strong, _ = task.detect(task.mel(torch.from_numpy(audio)[None]), task.sed_teacher)
    duration = len(audio) / SAMPLE_RATE
    encoder = ManyHotEncoder(DESED_CLASSES, audio_len=duration)
    _, scores = decode_strong_scores(strong.numpy(), ["long.wav"], encoder, 1, durations={"long.wav": duration})
    return scores_to_detections(scores, [0.5])[0.5]


@pytest.mark.parametrize("hop,taper", [(5.0, "none"), (5.0, "hann"), (3.0, "hann")])
def test_long_file_events_at_the_right_times(tmp_path, make_audio, band_task, hop, taper):
    audio = tone_track(EVENTS, 61.3)
    path = make_audio(tmp_path / "long.wav", audio)
    scores, detections = detect_file(band_task, path, hop=hop, taper=taper, median_window=1, batch_size=5)
    reference = whole_file_detections(band_task, audio)
    assert len(detections) == len(reference) == len(EVENTS), detections
    for label, onset, offset in EVENTS:
        (found,) = detections[detections["event_label"] == label].itertuples()
        (whole,) = reference[reference["event_label"] == label].itertuples()
        assert abs(found.onset - whole.onset) <= FRAME and abs(found.offset - whole.offset) <= FRAME, (found, whole)
        # the truth, to one frame of frame quantisation plus one frame of the STFT window's reach (+-64 ms)
        assert abs(found.onset - onset) <= 2 * FRAME and abs(found.offset - offset) <= 2 * FRAME, (label, found)
    assert (detections["filename"] == "long.wav").all()
    assert len(scores) == 958 and scores["offset"].iloc[-1] == pytest.approx(61.3)


def test_44k_stereo_gives_the_16k_mono_results(tmp_path, make_audio, band_task, default_task):
    mono = tone_track([event for event in EVENTS if event[2] < 25], 25.0)
    upsampled = resample_poly(mono, 441, 160).astype(np.float32)
    side = 0.05 * np.random.default_rng(1).standard_normal(len(upsampled)).astype(np.float32)
    stereo = np.stack([upsampled + side, upsampled - side], axis=1)  # channel mean = the upsampled mono
    mono_path = make_audio(tmp_path / "mono.wav", mono)
    stereo_path = make_audio(tmp_path / "stereo.flac", stereo, sample_rate=44100, subtype="PCM_24")
    _, mono_events = detect_file(band_task, mono_path, median_window=1)
    _, stereo_events = detect_file(band_task, stereo_path, median_window=1)
    pd.testing.assert_frame_equal(mono_events.drop(columns="filename"), stereo_events.drop(columns="filename"))
    mono_scores, _ = detect_file(default_task, mono_path)
    stereo_scores, _ = detect_file(default_task, stereo_path)
    pd.testing.assert_frame_equal(mono_scores[["onset", "offset"]], stereo_scores[["onset", "offset"]])
    difference = np.abs(mono_scores.to_numpy()[:, 2:] - stereo_scores.to_numpy()[:, 2:])
    assert difference.max() < 2e-3, difference.max()


def test_parse_thresholds():
    labels = ["a", "b", "c"]
    np.testing.assert_array_equal(parse_thresholds(0.3, labels), [0.3, 0.3, 0.3])
    np.testing.assert_array_equal(parse_thresholds(["0.1", "0.2", "0.3"], labels), [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(parse_thresholds(["0.4", "b=0.7"], labels), [0.4, 0.7, 0.4])
    np.testing.assert_array_equal(parse_thresholds({"c": 0.9}, labels), [0.5, 0.5, 0.9])
    for bad in (["0.1", "0.2"], ["x=0.3"], ["high"]):
        with pytest.raises(ValueError):
            parse_thresholds(bad, labels)


def test_per_class_thresholds_select_per_class_events(tmp_path, make_audio, band_task):
    path = make_audio(tmp_path / "long.wav", tone_track(EVENTS, 61.3))
    _, detections = detect_file(band_task, path, median_window=1, threshold={"Dog": 1.0, "Speech": 1.0})
    assert set(detections["event_label"]) == {label for label, _, _ in EVENTS} - {"Dog", "Speech"}


def test_student_and_teacher_and_bf16(tmp_path, make_audio, default_task):
    path = make_audio(tmp_path / "x.wav", 12.0)
    windows = torch.from_numpy(sf.read(path, dtype="float32")[0][None, :160000])
    for model in ("student", "teacher"):
        scores, _ = detect_file(default_task, path, model=model, hop=10.0, median_window=1)
        with torch.no_grad():
            expected = default_task.detect(default_task.mel(windows), getattr(default_task, f"sed_{model}"))[0][0]
        np.testing.assert_allclose(scores.to_numpy()[:156, 2:], expected.numpy().T, atol=1e-6)
    student, _ = detect_file(default_task, path, model="student")
    teacher, _ = detect_file(default_task, path, model="teacher")
    assert not np.allclose(student.to_numpy(), teacher.to_numpy())
    half, _ = detect_file(default_task, path, model="teacher", precision="bf16")
    assert np.abs(half.to_numpy() - teacher.to_numpy()).max() < 0.05
    with pytest.raises(ValueError, match="model must be one of"):
        detect_file(default_task, path, model="ema")


def test_bad_options_and_files(tmp_path, make_audio, default_task):
    with pytest.raises(ValueError, match="fp16 autocast needs a CUDA device"):
        Detector(default_task, precision="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Detector(default_task, device="cuda")
    text = tmp_path / "readme.wav"
    text.write_text("hello")
    with pytest.raises(AudioInputError, match="readme.wav: not an audio file"):
        detect_file(default_task, text)


def test_a_file_that_vanishes_or_breaks_midway_is_skipped_and_the_rest_processed(tmp_path, make_audio, default_task):
    first = make_audio(tmp_path / "a.wav", 25.0)
    vanishing = make_audio(tmp_path / "b.wav", 25.0)
    truncated = make_audio(tmp_path / "c.wav", 25.0, subtype="PCM_16")
    last = make_audio(tmp_path / "d.wav", 3.0)
    with open(truncated, "r+b") as handle:  # header announces 25 s, data stops after ~12 s
        handle.truncate(44 + 2 * 16000 * 12)
    detector = Detector(default_task, batch_size=3)

    def paths():
        yield first
        vanishing.unlink()
        yield vanishing
        yield truncated
        yield last

    results = list(detector.run(paths()))
    assert [type(r).__name__ for r in results] == ["FileResult", "Skipped", "FileResult", "FileResult"]
    assert isinstance(results[1], Skipped) and "b.wav" in results[1].reason
    assert results[2].duration == pytest.approx(12.0)  # a truncated file is read up to where its data ends
    assert results[3].duration == pytest.approx(3.0)
