import json
import multiprocessing
import os

import numpy as np
import pytest
import soundfile as sf

from desed_task.data import resample as resample_module
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


def test_issue13_item3_repaired_source_is_resampled_again(tmp_path):
    src = _source_folder(tmp_path, n_files=2)
    complete = (src / "1.wav").read_bytes()
    (src / "1.wav").write_bytes(complete[:100])
    dst = tmp_path / "audio_16k"
    resample_folder(src, dst, 16000)
    (src / "1.wav").write_bytes(complete)  # the user re-downloads the broken file
    assert resample_folder(src, dst, 16000) is True
    audio, sr = sf.read(dst / "1.wav")
    assert len(audio) == 32000 and abs(_peak_frequency(audio, sr) - 750.0) < 1.0
    assert json.loads((dst / COMPLETE_MARKER).read_text())["rejected"] == {}
    assert resample_folder(src, dst, 16000) is False


def test_changed_and_removed_sources_update_the_cache_and_the_others_are_kept(tmp_path):
    src = _source_folder(tmp_path, n_files=3)
    dst = tmp_path / "audio_16k"
    resample_folder(src, dst, 16000)
    kept_time = (dst / "0.wav").stat().st_mtime_ns
    write_tone(src / "1.wav", seconds=2.0, sr=44100, freq=2000.0, channels=2)  # same size, new content
    stat = (src / "1.wav").stat()
    os.utime(src / "1.wav", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
    (src / "2.wav").unlink()
    assert resample_folder(src, dst, 16000) is True
    audio, sr = sf.read(dst / "1.wav")
    assert abs(_peak_frequency(audio, sr) - 2000.0) < 1.0
    assert sorted(p.name for p in dst.glob("*.wav")) == ["0.wav", "1.wav"]
    assert (dst / "0.wav").stat().st_mtime_ns == kept_time
    marker = json.loads((dst / COMPLETE_MARKER).read_text())
    assert marker["complete"] and marker["sources"] == {
        name: [(src / name).stat().st_size, (src / name).stat().st_mtime_ns] for name in ("0.wav", "1.wav")}


def test_interrupted_build_resumes_after_its_last_checkpoint(tmp_path, monkeypatch):
    src = _source_folder(tmp_path, n_files=5)
    dst = tmp_path / "audio_16k"
    converted = []
    convert = resample_module._convert

    def failing_after_three(source, target, target_fs):
        if len(converted) == 3:
            raise KeyboardInterrupt
        converted.append(source.name)
        return convert(source, target, target_fs)

    monkeypatch.setattr(resample_module, "CHECKPOINT_EVERY", 2)
    monkeypatch.setattr(resample_module, "_convert", failing_after_three)
    with pytest.raises(KeyboardInterrupt):
        resample_folder(src, dst, 16000)
    marker = json.loads((dst / COMPLETE_MARKER).read_text())
    assert not marker["complete"] and sorted(marker["sources"]) == ["0.wav", "1.wav"]
    converted.clear()
    monkeypatch.setattr(resample_module, "_convert", lambda *args: converted.append(args[0].name) or convert(*args))
    assert resample_folder(src, dst, 16000) is True
    assert converted == ["2.wav", "3.wav", "4.wav"]
    assert json.loads((dst / COMPLETE_MARKER).read_text())["complete"]
