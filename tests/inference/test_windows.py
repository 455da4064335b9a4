"""Window geometry (exact positions, coverage), overlap averaging, and output frames for any audio length."""
import numpy as np
import pytest

from desed_task.inference import Detector, WindowGeometry
from desed_task.inference.windows import OverlapAverage, taper_weights

DEFAULT = WindowGeometry(sample_rate=16000, window_samples=160000, frame_samples=1024, window_frames=156,
                         hop_frames=78)


def test_geometry_from_config_rounds_the_hop_to_whole_frames(default_task, demo_task):
    geometry = WindowGeometry.from_config(default_task.config, default_task.encoder.n_frames, 5.0)
    assert geometry == DEFAULT and geometry.hop_samples == 79872  # 78 frames of 64 ms = 4.992 s
    demo = WindowGeometry.from_config(demo_task.config, demo_task.encoder.n_frames, 5.0)
    assert (demo.frame_samples, demo.window_frames, demo.hop_frames) == (2048, 78, 39)
    assert WindowGeometry.from_config(default_task.config, 156, 3.0).hop_frames == 47  # 3 s / 64 ms = 46.875
    for bad_hop in (0.0, 0.01, 10.5):
        with pytest.raises(ValueError, match="hop"):
            WindowGeometry.from_config(default_task.config, 156, bad_hop)


@pytest.mark.parametrize("seconds,frames,windows", [
    (0.2, 4, 1), (9.99, 156, 1), (10.0, 156, 1), (10.01, 157, 2), (10.5, 165, 2), (61.3, 958, 12)])
def test_frames_and_windows_of_a_length(seconds, frames, windows):
    samples = int(round(seconds * 16000))
    assert DEFAULT.n_frames(samples) == frames
    assert DEFAULT.n_windows(samples) == windows
    last = DEFAULT.start_frame(windows - 1)
    assert last + DEFAULT.window_frames >= frames > last  # the last window is needed and covers the end
    assert DEFAULT.covered_frames(windows) == last + DEFAULT.window_frames
    assert DEFAULT.window_start(windows - 1) == last * 1024


def test_overlap_average_uniform_and_taper():
    uniform = OverlapAverage(1, taper_weights(4, "none"))
    uniform.add(0, np.full((1, 4), 1.0))
    uniform.add(2, np.full((1, 4), 3.0))
    np.testing.assert_allclose(uniform.average(6), [[1, 1, 2, 2, 3, 3]])
    hann = taper_weights(4, "hann")
    assert (hann > 0).all() and hann[0] < hann[1]
    tapered = OverlapAverage(1, hann, columns_per_frame=2)
    tapered.add(0, np.full((1, 8), 1.0))
    tapered.add(2, np.full((1, 8), 3.0))
    middle = (hann[2] * 1 + hann[0] * 3) / (hann[2] + hann[0])
    np.testing.assert_allclose(tapered.average(6)[0, 4:6], [middle, middle])
    np.testing.assert_allclose(tapered.average(6)[0, [0, 11]], [1, 3])
    with pytest.raises(RuntimeError, match="not covered"):
        tapered.average(7)


@pytest.mark.parametrize("reserved", [0, 3, 6, 40])
def test_reserved_room_gives_the_same_averages_and_still_grows(reserved):
    """`reserve` (the header's length) allocates once; a file longer than its header still grows."""
    rng = np.random.default_rng(0)
    windows = [(start, rng.random((2, 8))) for start in (0, 2, 4, 6)]
    grown = OverlapAverage(2, taper_weights(4, "hann"), columns_per_frame=2)
    ahead = OverlapAverage(2, taper_weights(4, "hann"), columns_per_frame=2)
    ahead.reserve(reserved)
    assert ahead.sums.shape == (2, 2 * reserved)
    for start, values in windows:
        grown.add(start, values)
        ahead.add(start, values)
    np.testing.assert_array_equal(ahead.average(10), grown.average(10))


@pytest.mark.parametrize("seconds", [0.2, 9.99, 10.0, 10.01, 10.5, 61.3])
def test_one_output_frame_per_model_frame_of_the_audio(tmp_path, make_audio, default_task, demo_task, seconds):
    path = make_audio(tmp_path / "x.wav", seconds)
    for task in (default_task, demo_task):
        detector = Detector(task, batch_size=4)
        geometry = detector.geometry
        (result,) = detector.run([path])
        frame = geometry.frame_samples / 16000
        starting_inside = int(np.ceil(seconds / frame - 1e-9))
        expected = min(starting_inside, geometry.window_frames) if seconds <= 10 else starting_inside
        assert len(result.scores) == expected == geometry.n_frames(int(round(seconds * 16000)))
        np.testing.assert_allclose(result.scores["onset"], np.arange(expected) * frame, atol=1e-9)
        assert result.scores["offset"].iloc[-1] == pytest.approx(min(expected * frame, seconds))
        assert result.duration == pytest.approx(seconds)
