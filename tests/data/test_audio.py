"""Completeness checks of audio files (the WAV header parser behind the truncation checks)."""
import struct

import numpy as np
import pytest
import soundfile as sf

from desed_task.data.audio import IncompleteAudioError, check_complete, read_complete, wav_declared_frames


def _wav(path, n_frames, data_size=None, channels=2, cut=0):
    """A 16-bit PCM WAV with an odd-sized chunk before `data`, written by hand."""
    samples = np.arange(n_frames * channels, dtype="<i2").tobytes()
    size = len(samples) if data_size is None else data_size
    fmt = struct.pack("<HHIIHH", 1, channels, 16000, 16000 * 2 * channels, 2 * channels, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"junk" + struct.pack("<I", 3) + b"abc\x00"
    body += b"data" + struct.pack("<I", size) + samples
    path.write_bytes((b"RIFF" + struct.pack("<I", len(body)) + body)[:len(body) + 8 - cut])
    return path


def test_declared_frames_skip_odd_chunks_and_unknown_sizes(tmp_path):
    assert wav_declared_frames(_wav(tmp_path / "a.wav", 1000)) == 1000
    assert wav_declared_frames(_wav(tmp_path / "b.wav", 1000, data_size=0xFFFFFFFF)) is None
    sf.write(str(tmp_path / "c.flac"), np.zeros(100), 16000)
    assert wav_declared_frames(tmp_path / "c.flac") is None


def test_truncated_wav_fails_the_cheap_and_the_full_check(tmp_path):
    whole, cut = _wav(tmp_path / "whole.wav", 1000), _wav(tmp_path / "cut.wav", 1000, cut=400)
    check_complete(whole, sf.info(str(whole)))
    assert len(read_complete(whole)[0]) == 1000
    with pytest.raises(IncompleteAudioError, match=r"declares 0\.062 s \(1000 frames\), the file holds 0\.056 s \(900"):
        check_complete(cut, sf.info(str(cut)))
    with pytest.raises(IncompleteAudioError, match=r"\(1000 frames\), the file holds 0\.056 s \(900 frames\)"):
        read_complete(cut)
