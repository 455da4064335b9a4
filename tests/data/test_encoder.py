import numpy as np
import pandas as pd
import pytest

from desed_task.data.classes import DESED_CLASSES
from desed_task.data.encoder import ManyHotEncoder


def test_classes_official_order():
    assert DESED_CLASSES[0] == "Alarm_bell_ringing" and DESED_CLASSES[-1] == "Vacuum_cleaner"
    assert list(DESED_CLASSES) == sorted(DESED_CLASSES) and len(DESED_CLASSES) == 10


def test_n_frames_and_conversions_match_the_official_formulas(encoder):
    assert encoder.n_frames == 156
    assert ManyHotEncoder(DESED_CLASSES, audio_len=10, frame_hop=256, net_pooling=1).n_frames == 625
    assert encoder.time_to_frame(1.0) == pytest.approx(16000 / 256 / 4)
    assert encoder.time_to_frame(11.0) == 156 and encoder.time_to_frame(-1.0) == 0
    assert encoder.frame_to_time(156) == pytest.approx(156 * 4 * 256 / 16000)
    assert encoder.frame_to_time(1000) == 10.0


def test_strong_encoding_uses_floor_onset_and_ceil_offset(encoder):
    events = pd.DataFrame({"onset": [0.5, 9.0], "offset": [1.01, 12.0], "event_label": ["Dog", "Speech"]})
    target = encoder.encode_strong_df(events)
    assert target.shape == (156, 10)
    dog = np.flatnonzero(target[:, DESED_CLASSES.index("Dog")])
    assert dog[0] == int(0.5 * 15.625) and dog[-1] + 1 == int(np.ceil(1.01 * 15.625))
    speech = np.flatnonzero(target[:, DESED_CLASSES.index("Speech")])
    assert speech[0] == int(9 * 15.625) and speech[-1] == 155
    assert target.sum() == len(dog) + len(speech)


def test_strong_round_trip_on_frame_grid(encoder):
    frame_s = 4 * 256 / 16000
    events = [("Cat", 10.3 * frame_s, 29.6 * frame_s), ("Cat", 50.5 * frame_s, 50.9 * frame_s), ("Frying", 0.0, 10.0)]
    decoded = encoder.decode_strong(encoder.encode_strong_df(events))
    expected = [("Cat", 10 * frame_s, 30 * frame_s), ("Cat", 50 * frame_s, 51 * frame_s), ("Frying", 0.0, 156 * frame_s)]
    assert [d[0] for d in decoded] == [e[0] for e in expected]
    np.testing.assert_allclose([d[1:] for d in decoded], [e[1:] for e in expected])
    assert encoder.encode_strong_df(pd.DataFrame({"onset": [np.nan], "offset": [np.nan], "event_label": [np.nan]})).sum() == 0


def test_weak_round_trip_and_unknown_label(encoder):
    assert encoder.decode_weak(encoder.encode_weak("Dog,Speech")) == ["Dog", "Speech"]
    assert encoder.decode_weak(encoder.encode_weak(["Speech", "Alarm_bell_ringing"])) == ["Alarm_bell_ringing", "Speech"]
    assert encoder.encode_weak([]).sum() == 0
    with pytest.raises(ValueError, match="Doorbell"):
        encoder.encode_weak(["Doorbell"])


def test_state_dict_round_trip():
    encoder = ManyHotEncoder(DESED_CLASSES, audio_len=5, net_pooling=2)
    restored = ManyHotEncoder.from_state_dict(encoder.state_dict())
    assert restored.state_dict() == encoder.state_dict() and restored.n_frames == encoder.n_frames == 156
