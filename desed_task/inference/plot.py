"""Detection figure of one file: log-mel spectrogram above the class score heat map with the detected events."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from desed_task.inference.detect import FileResult  # noqa: E402
from desed_task.utils.files import atomic_path


def save_detection_plot(result: FileResult, path: str | Path, title: str | None = None, dpi: int = 80) -> Path:
    """PNG with the dB log-mel (top; needs `result.spectrogram`), the post-processed scores per class (bottom,
    0..1) and each detected event outlined on its class row; time axis in seconds. Written atomically."""
    if result.spectrogram is None:
        raise ValueError("the result has no spectrogram: run the Detector with keep_spectrogram=True")
    scores = result.scores
    labels = list(scores.columns[2:])
    end = float(scores["offset"].iloc[-1])
    grid_end = len(scores) * result.frame_seconds  # the last frame may extend past the end of the audio
    width = min(16.0, max(8.0, end / 4))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(width, 6), sharex=True,
                                         gridspec_kw={"height_ratios": [1, 1.2]})
    top.imshow(result.spectrogram, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
               extent=(0, grid_end, 0, result.spectrogram.shape[0]))
    top.set_ylabel("mel band")
    top.set_title(title or result.path.name)
    image = bottom.imshow(scores[labels].to_numpy().T, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                          interpolation="nearest", extent=(0, grid_end, -0.5, len(labels) - 0.5))
    for event in result.detections.itertuples(index=False):
        row = labels.index(event.event_label)
        bottom.add_patch(Rectangle((event.onset, row - 0.45), event.offset - event.onset, 0.9, fill=False,
                                   edgecolor="red", linewidth=1.5))
    bottom.set_yticks(range(len(labels)), labels)
    bottom.set_xlabel("time (s)")
    bottom.set_xlim(0, end)
    figure.colorbar(image, ax=[top, bottom], fraction=0.02, pad=0.01, label="score")
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(figure)
    return Path(path)
