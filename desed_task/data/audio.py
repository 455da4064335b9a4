"""Audio reading with soundfile: mono downmix, polyphase resampling, fixed-length crop/pad."""
from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

AUDIO_EXTENSIONS = (".wav", ".flac")


def list_audio_files(folder: str | Path) -> list[str]:
    """Sorted names of the audio files directly inside `folder` (hidden files excluded)."""
    folder = Path(folder)
    return sorted(
        p.name for p in folder.iterdir()
        if p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(samples,) or (samples, channels) -> (samples,) by averaging the channels."""
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def resample(audio: np.ndarray, orig_fs: int, target_fs: int) -> np.ndarray:
    """Polyphase resampling along the first axis (441 -> 160 for 44.1 kHz -> 16 kHz)."""
    if orig_fs == target_fs:
        return audio
    common = gcd(int(orig_fs), int(target_fs))
    return resample_poly(audio, int(target_fs) // common, int(orig_fs) // common, axis=0).astype(np.float32)


def read_audio(path: str | Path, target_fs: int) -> np.ndarray:
    """Read a file as float32 mono at `target_fs`, resampling on the fly when its rate differs."""
    audio, fs = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(to_mono(audio), fs, target_fs).astype(np.float32, copy=False)


def crop_or_pad(audio: np.ndarray, target_len: int, start: int = 0) -> tuple[np.ndarray, int]:
    """Take `target_len` samples from `start` (zero-padding at the end); returns (audio, valid sample count)."""
    segment = audio[start:start + target_len]
    valid = len(segment)
    if valid < target_len:
        segment = np.pad(segment, (0, target_len - valid))
    return segment, valid
