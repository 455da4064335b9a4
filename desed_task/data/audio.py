"""Audio reading with soundfile: mono downmix, polyphase resampling, fixed-length crop/pad, and the
completeness checks that catch truncated files (the common fault of real DESED downloads)."""
from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

AUDIO_EXTENSIONS = (".wav", ".flac")
TAIL_FRAMES = 1024
_UNKNOWN_WAV_DATA_SIZES = (0, 0xFFFFFFFF)  # written by streaming writers that never finalised the header


class IncompleteAudioError(ValueError):
    """The file holds fewer frames than its header declares (a truncated file)."""


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


def wav_declared_frames(path: str | Path) -> int | None:
    """Frames that the RIFF header of a WAV file declares (data chunk size / block align).

    libsndfile cuts its `frames` to what the file holds, so only the header tells that a WAV file was
    truncated. None when the file is not a RIFF WAV file or the size is unknown (0 or 0xFFFFFFFF)."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return None
            chunk_id, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if chunk_id == b"data":
                if size in _UNKNOWN_WAV_DATA_SIZES or block_align <= 0:
                    return None
                return size // block_align
            if chunk_id == b"fmt ":
                block_align = int.from_bytes(handle.read(size)[12:14], "little")
                handle.seek(size % 2, 1)
            else:
                handle.seek(size + size % 2, 1)


def declared_frames(path: str | Path, info) -> int:
    """Frames the header of `path` declares: the RIFF data size for WAV, the stream header otherwise
    (`info` is its soundfile.info)."""
    declared = wav_declared_frames(path)
    return info.frames if declared is None else declared


def _truncation_message(declared: int, held: int, samplerate: int) -> str:
    return (f"truncated: the header declares {declared / samplerate:.3f} s ({declared} frames), "
            f"the file holds {held / samplerate:.3f} s ({held} frames)")


def check_complete(path: str | Path, info) -> None:
    """Raise IncompleteAudioError when `path` holds less audio than its header declares, without decoding it:
    a WAV file's header data size is compared with what the file holds; other files (FLAC) decode only
    their last TAIL_FRAMES frames (a truncated FLAC cannot seek or decode there)."""
    declared = wav_declared_frames(path)
    if declared is not None:
        if declared > info.frames:
            raise IncompleteAudioError(_truncation_message(declared, info.frames, info.samplerate))
        return
    count = min(TAIL_FRAMES, info.frames)
    try:
        with sf.SoundFile(str(path)) as handle:
            handle.seek(info.frames - count)
            held = info.frames - count + len(handle.read(count, dtype="float32"))
    except RuntimeError as error:  # soundfile's LibsndfileError
        raise IncompleteAudioError(
            f"truncated or corrupt: the last {count} frames cannot be decoded ({error})") from None
    if held < info.frames:
        raise IncompleteAudioError(_truncation_message(info.frames, held, info.samplerate))


def read_complete(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode the whole file as (samples, channels) float32; IncompleteAudioError when fewer frames
    are decoded than the header declares."""
    info = sf.info(str(path))
    audio, fs = sf.read(str(path), dtype="float32", always_2d=True)
    declared = declared_frames(path, info)
    if len(audio) < declared:
        raise IncompleteAudioError(_truncation_message(declared, len(audio), fs))
    return audio, fs
