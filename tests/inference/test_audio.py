"""Block-wise reading: equal to reading and resampling the whole file; clear errors naming the file."""
import numpy as np
import pytest

from desed_task.data.audio import read_audio
from desed_task.inference.audio import AudioInputError, audio_info, read_blocks


@pytest.mark.parametrize("sample_rate,channels", [(44100, 2), (22050, 1), (48000, 3), (16000, 1), (8000, 2)])
def test_blocks_equal_whole_file_resampling(tmp_path, make_audio, sample_rate, channels):
    path = make_audio(tmp_path / "x.wav", 2.3, sample_rate, channels, seed=sample_rate)
    whole = read_audio(path, 16000)
    for block_seconds in (0.05, 0.31, 1.0, 30.0):
        blocks = list(read_blocks(path, 16000, block_seconds))
        if block_seconds < 1.0:
            assert len(blocks) > 2
        np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_errors_name_the_file(tmp_path, make_audio):
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    empty = make_audio(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioInputError, match="notes.wav: not an audio file"):
        audio_info(text)
    with pytest.raises(AudioInputError, match="empty.wav: empty audio file"):
        audio_info(empty)
    with pytest.raises(AudioInputError, match="gone.wav: file not found"):
        audio_info(tmp_path / "gone.wav")
    with pytest.raises(AudioInputError, match="gone.wav: cannot read audio"):
        list(read_blocks(tmp_path / "gone.wav", 16000))
