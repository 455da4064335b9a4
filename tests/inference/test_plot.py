"""The detection figure: a legend for the detection boxes and the threshold, a dB scale on the log-mel."""
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from desed_task.inference.detect import FileResult
from desed_task.inference.plot import detection_figure, save_detection_plot, threshold_label

LABELS = ["Alarm_bell_ringing", "Dog", "Speech"]


def make_result(detections):
    frames = 50
    onsets = np.arange(frames) * 0.2
    scores = pd.DataFrame({"onset": onsets, "offset": onsets + 0.2})
    rng = np.random.default_rng(0)
    for label in LABELS:
        scores[label] = rng.random(frames)
    spectrogram = rng.uniform(-80.0, 0.0, size=(16, 100))
    return FileResult(Path("clip.wav"), 10.0, 0.2, scores, detections, spectrogram)


def test_threshold_label():
    assert threshold_label(0.5, LABELS) == "detection: post-processed score >= 0.5"
    assert threshold_label([0.5, 0.5, 0.5], LABELS) == "detection: post-processed score >= 0.5"
    assert threshold_label([0.5, 0.3, 0.5], LABELS) == "detection: post-processed score >= 0.5 (Dog=0.3)"


def test_figure_has_legend_threshold_marks_and_db_scale(tmp_path):
    detections = pd.DataFrame({"filename": ["clip.wav"], "onset": [1.0], "offset": [3.0], "event_label": ["Dog"]})
    figure = detection_figure(make_result(detections), thresholds=np.array([0.5, 0.3, 0.5]))
    top, bottom, top_scale, score_scale = figure.axes
    assert top_scale.get_ylabel() == "log-mel (dB)" and score_scale.get_ylabel() == "score"
    assert np.allclose(top_scale.get_ylim(), top.images[0].get_clim())
    assert [text.get_text() for text in bottom.get_legend().get_texts()] == [
        "detection: post-processed score >= 0.5 (Dog=0.3)"]
    marks = sorted(line.get_ydata()[0] for line in score_scale.lines)
    assert marks == [0.3, 0.5]
    assert [patch.get_xy() for patch in bottom.patches] == [(1.0, 1 - 0.45)]
    plt.close(figure)
    empty = pd.DataFrame(columns=["filename", "onset", "offset", "event_label"])
    assert detection_figure(make_result(empty), thresholds=0.5).axes[1].get_legend().get_texts()[0].get_text() == (
        "detection: post-processed score >= 0.5 (none in this file)")
    path = save_detection_plot(make_result(empty), tmp_path / "plots" / "clip.png", thresholds=0.5)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(path.parent.glob(".*tmp"))
