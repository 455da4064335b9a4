"""Detection figure of one file: log-mel spectrogram above the class score heat map with the detected events."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from desed_task.inference.detect import FileResult  # noqa: E402
from desed_task.utils.files import atomic_path

DETECTION_COLOUR = "red"


def threshold_label(thresholds, labels) -> str:
    """Legend text of the decision threshold(s): one value, or `Label=value` for classes off the most common one."""
    values = np.asarray(thresholds, dtype=float).reshape(-1)
    if values.size == 1 or np.all(values == values[0]):
        return f"detection: post-processed score >= {values[0]:g}"
    distinct, counts = np.unique(values, return_counts=True)
    common = float(distinct[counts.argmax()])
    others = ", ".join(f"{label}={value:g}" for label, value in zip(labels, values) if value != common)
    return f"detection: post-processed score >= {common:g} ({others})"


def save_detection_plot(result: FileResult, path: str | Path, title: str | None = None, dpi: int = 80,
                        thresholds=None) -> Path:
    """Write `detection_figure` as a PNG, atomically."""
    figure = detection_figure(result, title, thresholds)
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(figure)
    return Path(path)


def detection_figure(result: FileResult, title: str | None = None, thresholds=None) -> plt.Figure:
    """The dB log-mel (top, with its dB scale; needs `result.spectrogram`), the post-processed scores per class
    (bottom, 0..1) and each detected event outlined in red on its class row; time axis in seconds.
    `thresholds` (one value or one per class) are named in the legend and marked on the score scale."""
    if result.spectrogram is None:
        raise ValueError("the result has no spectrogram: run the Detector with keep_spectrogram=True")
    scores = result.scores
    labels = list(scores.columns[2:])
    end = float(scores["offset"].iloc[-1])
    grid_end = len(scores) * result.frame_seconds  # the last frame may extend past the end of the audio
    width = min(16.0, max(8.0, end / 4))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(width, 6.4), sharex=True,
                                         gridspec_kw={"height_ratios": [1, 1.2]})
    spectrogram = top.imshow(result.spectrogram, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                             extent=(0, grid_end, 0, result.spectrogram.shape[0]))
    top.set_ylabel("mel band")
    top.set_title(title or result.path.name)
    figure.colorbar(spectrogram, ax=top, fraction=0.02, pad=0.01, label="log-mel (dB)")
    image = bottom.imshow(scores[labels].to_numpy().T, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                          interpolation="nearest", extent=(0, grid_end, -0.5, len(labels) - 0.5))
    box = None
    for event in result.detections.itertuples(index=False):
        row = labels.index(event.event_label)
        box = bottom.add_patch(Rectangle((event.onset, row - 0.45), event.offset - event.onset, 0.9, fill=False,
                                         edgecolor=DETECTION_COLOUR, linewidth=1.5))
    bottom.set_yticks(range(len(labels)), labels)
    bottom.set_xlabel("time (s)")
    bottom.set_xlim(0, end)
    scale = figure.colorbar(image, ax=bottom, fraction=0.02, pad=0.01, label="score")
    if thresholds is not None:
        for value in np.unique(np.asarray(thresholds, dtype=float)):
            scale.ax.axhline(value, color=DETECTION_COLOUR, linewidth=1.5)
        legend = threshold_label(thresholds, labels)
    else:
        legend = "detection"
    if box is None:
        legend += " (none in this file)"
    bottom.legend(handles=[Rectangle((0, 0), 1, 1, fill=False, edgecolor=DETECTION_COLOUR, linewidth=1.5)],
                  labels=[legend], loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False, fontsize="small")
    return figure
