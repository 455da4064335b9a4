import json
import multiprocessing

import numpy as np
import soundfile as sf

from desed_task.data.audio import read_audio
from desed_task.data.resample import COMPLETE_MARKER, resample_folder

from .conftest import write_tone


def _peak_frequency(audio, sr):
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return np.argmax(spectrum) * sr / len(audio)


def _source_folder(tmp_path, n_files=6):
    src = tmp_path / "audio_44k"
    src.mkdir()
    for i in range(n_files):
        write_tone(src / f"{i}.wav", seconds=2.0, sr=44100, freq=500.0 + 250 * i, channels=2)
    return src


def test_resampled_tone_keeps_frequency_and_length(tmp_path):
    src = _source_folder(tmp_path, n_files=2)
    dst = tmp_path / "audio_16k"
    assert resample_folder(src, dst, 16000) is True
    audio, sr = sf.read(dst / "1.wav")
    assert sr == 16000 and audio.ndim == 1 and len(audio) == 32000
    assert abs(_peak_frequency(audio, sr) - 750.0) < 1.0
    assert json.loads((dst / COMPLETE_MARKER).read_text())["target_fs"] == 16000
    assert resample_folder(src, dst, 16000) is False


def test_on_the_fly_resampling_of_a_file(tmp_path):
    write_tone(tmp_path / "x.wav", seconds=1.0, sr=44100, freq=1000.0)
    audio = read_audio(tmp_path / "x.wav", 16000)
    assert audio.dtype == np.float32 and len(audio) == 16000
    assert abs(_peak_frequency(audio, 16000) - 1000.0) < 1.5


def _build(args):
    return resample_folder(*args)


def test_concurrent_builders_give_one_complete_valid_cache(tmp_path):
    src = _source_folder(tmp_path)
    dst = tmp_path / "audio_16k"
    with multiprocessing.get_context("fork").Pool(3) as pool:
        computed = pool.map(_build, [(str(src), str(dst), 16000)] * 3)
    assert sum(computed) == 1
    assert sorted(p.name for p in dst.glob("*.wav")) == [f"{i}.wav" for i in range(6)]
    assert not list(dst.glob(".*.tmp"))
    for i in range(6):
        audio, sr = sf.read(dst / f"{i}.wav")
        assert sr == 16000 and len(audio) == 32000
        assert abs(_peak_frequency(audio, sr) - (500.0 + 250 * i)) < 1.0


def test_interrupted_build_is_completed_and_cleaned(tmp_path):
    src = _source_folder(tmp_path, n_files=3)
    dst = tmp_path / "audio_16k"
    resample_folder(src, dst, 16000)
    (dst / COMPLETE_MARKER).unlink()
    (dst / "2.wav").unlink()
    (dst / ".2.wav.12345.tmp").write_bytes(b"half a file")
    assert resample_folder(src, dst, 16000) is True
    assert not list(dst.glob(".*.tmp"))
    assert sf.info(str(dst / "2.wav")).frames == 32000 and (dst / COMPLETE_MARKER).is_file()
