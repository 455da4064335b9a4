"""Streaming audio input: any soundfile format, rate and channel count -> mono float32 blocks at the model's rate.

A file is read in blocks (`soundfile.SoundFile.blocks`), so an hour of audio is never decoded whole. Channels
are averaged and the rate is converted with the same polyphase resampler as training
(`desed_task.data.audio.resample`, scipy `resample_poly`). Resampling block by block gives the samples of
resampling the whole file at once: each block starts at a multiple of the reduced down-sampling factor
(so its output grid is the file's) and is resampled with enough input context on both sides to cover the
filter, whose edge outputs are then dropped.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from desed_task.data.audio import resample, to_mono

BLOCK_SECONDS = 30.0


class AudioInputError(ValueError):
    """An audio file that cannot be used; the message names the file."""


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """soundfile's header info of `path`, or `AudioInputError` naming the file (missing, not audio, empty)."""
    path = Path(path)
    if not path.is_file():
        raise AudioInputError(f"{path}: file not found")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioInputError(f"{path}: not an audio file soundfile can read ({error})") from None
    if info.frames == 0:
        raise AudioInputError(f"{path}: empty audio file (0 samples)")
    return info


def resampling_ratio(orig_fs: int, target_fs: int) -> tuple[int, int]:
    common = math.gcd(int(orig_fs), int(target_fs))
    return int(target_fs) // common, int(orig_fs) // common


def read_blocks(path: str | Path, target_fs: int, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Yield consecutive mono float32 blocks of `path` at `target_fs`.

    Their concatenation equals `desed_task.data.audio.read_audio(path, target_fs)` (to float rounding);
    memory stays at a few blocks whatever the file length. Read errors name the file.
    """
    path = Path(path)
    try:
        with sf.SoundFile(str(path)) as audio_file:
            orig_fs = audio_file.samplerate
            block = max(1, int(round(block_seconds * orig_fs)))
            blocks = (to_mono(chunk) for chunk in audio_file.blocks(blocksize=block, dtype="float32", always_2d=True))
            if orig_fs == target_fs:
                yield from blocks
            else:
                yield from _resample_stream(blocks, orig_fs, target_fs, block)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioInputError(f"{path}: cannot read audio ({error})") from None


def _resample_stream(blocks: Iterator[np.ndarray], orig_fs: int, target_fs: int, block: int) -> Iterator[np.ndarray]:
    """Polyphase resampling of a stream of mono blocks, equal to resampling their concatenation at once."""
    up, down = resampling_ratio(orig_fs, target_fs)
    # resample_poly's filter reaches 10 * max(up, down) upsampled samples to each side.
    context = down * math.ceil((10 * max(up, down) / up + 2) / down)
    step = down * max(1, block // down)
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0  # input index of buffer[0]
    start = 0  # next input index to produce output from (a multiple of `down`)
    total = 0
    for chunk in blocks:
        buffer = np.concatenate([buffer, chunk])
        total += len(chunk)
        while total - start >= step + context:
            yield _resample_segment(buffer, buffer_start, start, start + step, total, up, down, orig_fs, target_fs,
                                    context, final=False)
            start += step
            drop = max(0, start - context - buffer_start)
            buffer, buffer_start = buffer[drop:], buffer_start + drop
    if total > start:
        yield _resample_segment(buffer, buffer_start, start, total, total, up, down, orig_fs, target_fs, context,
                                final=True)


def _resample_segment(buffer, buffer_start, start, stop, total, up, down, orig_fs, target_fs, context, final):
    """Output samples of input [start, stop), computed from input [start - context, stop + context)."""
    segment_start = max(0, start - context)
    segment_stop = min(total, stop + context)
    output = resample(buffer[segment_start - buffer_start:segment_stop - buffer_start], orig_fs, target_fs)
    first = (start - segment_start) * up // down
    if final:
        return output[first:]
    return output[first:first + (stop - start) * up // down]
