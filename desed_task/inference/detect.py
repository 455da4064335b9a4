"""Any-length sound event detection with a trained SED task: windows of many files batched through the
trainer's own frontend and `detect`, overlap-averaged frame scores, the evaluation package's post-processing
(`decode_strong_scores`: median filter, per class when the config lists one window per class) and decoding
(`scores_to_detections`).
"""
from __future__ import annotations

import contextlib
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from desed_task.data.encoder import ManyHotEncoder
from desed_task.evaluation import decode_strong_scores, scores_to_detections
from desed_task.postprocess import PostprocessParams, apply_postprocessing
from desed_task.postprocess.params import validate as validate_params
from desed_task.evaluation.io import EVENT_COLUMNS, audio_id
from desed_task.inference.audio import AudioInputError, resampling_ratio, audio_info, read_blocks
from desed_task.inference.model import load_task, select_model
from desed_task.inference.windows import OverlapAverage, WindowGeometry, taper_weights
from desed_task.nnet.cnn import fold_for_inference
from desed_task.training.sed import SEDTask

DEFAULT_HOP = 5.0
DEFAULT_TAPER = "none"
PRECISIONS = {"32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_thresholds(spec, labels: Sequence[str]) -> np.ndarray:
    """Per-class decision thresholds from one number, one number per class (in label order), a
    {label: threshold} mapping, or command-line words: numbers and/or `Label=value` (a lone number is the
    default of the classes not named)."""
    labels = list(labels)
    if isinstance(spec, Mapping):
        words = [f"{label}={value}" for label, value in spec.items()]
    elif isinstance(spec, (str, int, float)):
        words = [str(spec)]
    else:
        words = [str(word) for word in spec]
    numbers = [word for word in words if "=" not in word]
    named = dict(word.split("=", 1) for word in words if "=" in word)
    unknown = sorted(set(named) - set(labels))
    if unknown:
        raise ValueError(f"threshold for unknown class(es) {unknown}; classes: {labels}")
    try:
        if len(numbers) == len(labels) and len(labels) > 1 and not named:
            values = [float(n) for n in numbers]
        elif len(numbers) <= 1:
            default = float(numbers[0]) if numbers else 0.5
            values = [float(named.get(label, default)) for label in labels]
        else:
            raise ValueError(f"give one threshold or one per class ({len(labels)}), got {len(numbers)}")
    except ValueError as error:
        raise ValueError(f"invalid threshold {words}: {error}") from None
    return np.asarray(values, dtype=float)


def detections_from_scores(table: pd.DataFrame, filename: str, thresholds: np.ndarray) -> pd.DataFrame:
    """Events (filename, onset, offset, event_label) of one score table, class c thresholded at thresholds[c]."""
    labels = list(table.columns[2:])
    by_threshold = scores_to_detections({audio_id(filename): table}, sorted(set(thresholds.tolist())))
    parts = [events[events["event_label"].isin([l for l, t in zip(labels, thresholds) if t == threshold])]
             for threshold, events in by_threshold.items()]
    events = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=EVENT_COLUMNS)
    events["filename"] = filename
    return events[EVENT_COLUMNS].sort_values(["onset", "event_label"], kind="stable").reset_index(drop=True)


@dataclass
class FileResult:
    """The outcome of one file: post-processed sed_scores_eval score table (frames of `frame_seconds`),
    detections, and (when kept) the dB log-mel (n_mels, mel frames) for the figure."""

    path: Path
    duration: float
    frame_seconds: float
    scores: pd.DataFrame
    detections: pd.DataFrame
    spectrogram: np.ndarray | None = None

    @property
    def clip_id(self) -> str:
        return audio_id(self.path.name)


@dataclass
class Skipped:
    path: Path
    reason: str


class _FileState:
    """Windows sent and received for one file while it streams through the batches."""

    def __init__(self, path: Path, n_classes: int, weights: np.ndarray, spectrogram: tuple[int, int] | None):
        self.path = path
        self.scores = OverlapAverage(n_classes, weights)
        self.spectrogram = None if spectrogram is None else OverlapAverage(spectrogram[0], weights, spectrogram[1])
        self.received = 0
        self.n_windows: int | None = None
        self.n_samples = 0
        self.error: str | None = None

    def reserve(self, n_frames: int) -> None:
        """Room for the frames the header announces (the file's true length still wins)."""
        self.scores.reserve(n_frames)
        if self.spectrogram is not None:
            self.spectrogram.reserve(n_frames)

    @property
    def done(self) -> bool:
        return self.error is not None or (self.n_windows is not None and self.received == self.n_windows)


class Detector:
    """A trained SED task set up for inference on files of any length, rate and channel count.

    Args:
        task: the trainer task (e.g. from `load_task`), its config, frontend, scaler and `detect` are used.
        model: "teacher" or "student".
        hop: seconds between window starts (rounded to whole output frames; the window is the training length).
        taper: "none" (plain average of overlapping frames) or "hann".
        median_window: post-processing median filter (frames; one per class allowed); default the config's.
        threshold: decision threshold(s), see `parse_thresholds`.
        batch_size: windows per forward pass (windows of consecutive files share batches).
        device: "cpu", "cuda", "cuda:1", ...; precision: "32", or "bf16"/"fp16" autocast of the model.
        postprocess: tuned post-processing parameters (`desed_task.postprocess`) applied to the raw frame scores
            instead of the median filter.
        keep_spectrogram: keep each file's log-mel in the results (for figures; ~115 MB per hour at 128 mels).
    """

    def __init__(self, task: SEDTask, model: str = "teacher", hop: float = DEFAULT_HOP, taper: str = DEFAULT_TAPER,
                 median_window=None, threshold=0.5, batch_size: int = 16, device: str = "cpu",
                 precision: str = "32", keep_spectrogram: bool = False, postprocess: PostprocessParams | None = None):
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if str(precision) not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
        if str(precision) == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16 autocast needs a CUDA device; use bf16 on CPU")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.task = task.eval().to(self.device)
        self.model_name = model
        self.model = fold_for_inference(select_model(task, model))
        self.config = task.config
        self.labels = list(task.encoder.labels)
        self.geometry = WindowGeometry.from_config(self.config, task.encoder.n_frames, hop)
        self.weights = taper_weights(self.geometry.window_frames, taper)
        self.median_window = self.config["training"]["median_window"] if median_window is None else median_window
        self.thresholds = parse_thresholds(threshold, self.labels)
        if postprocess is not None:
            validate_params(postprocess, self.labels)
        self.postprocess = postprocess
        self.batch_size = int(batch_size)
        self.autocast_dtype = PRECISIONS[str(precision)]
        self.keep_spectrogram = keep_spectrogram
        self.mel_frames_per_frame = int(self.config["data"]["net_subsample"])

    # ------------------------------------------------------------------ windows of one file
    def expected_windows(self, path: Path) -> int:
        """Windows of a file from its header (for progress bars); `AudioInputError` for an unusable file."""
        info = audio_info(path)
        up, down = resampling_ratio(info.samplerate, self.geometry.sample_rate)
        return self.geometry.n_windows(math.ceil(info.frames * up / down))

    def _windows(self, state: _FileState) -> Iterator[tuple[int, np.ndarray]]:
        """(index, L samples) of every window of the file, read block by block; sets state.n_windows at the end."""
        geometry = self.geometry
        length = geometry.window_samples
        buffer, buffer_start, received, index = np.zeros(0, dtype=np.float32), 0, 0, 0
        for block in read_blocks(state.path, geometry.sample_rate):
            buffer = np.concatenate([buffer, block])
            received += len(block)
            while geometry.window_start(index) + length <= received:
                offset = geometry.window_start(index) - buffer_start
                yield index, buffer[offset:offset + length].copy()
                index += 1
            drop = geometry.window_start(index) - buffer_start
            buffer, buffer_start = buffer[drop:], buffer_start + drop
        if received == 0:
            raise AudioInputError(f"{state.path}: empty audio file (0 samples)")
        state.n_samples = received
        n_windows = geometry.n_windows(received)
        while index < n_windows:
            offset = geometry.window_start(index) - buffer_start
            window = np.zeros(length, dtype=np.float32)
            tail = buffer[offset:offset + length]
            window[:len(tail)] = tail
            yield index, window
            index += 1
        state.n_windows = n_windows

    # ------------------------------------------------------------------ model
    def _forward(self, batch: list[tuple[_FileState, int, np.ndarray]]) -> None:
        audio = torch.from_numpy(np.stack([window for _, _, window in batch])).to(self.device)
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype is not None
                    else contextlib.nullcontext())
        with torch.inference_mode():
            inputs, embeddings = self.task.inference_inputs(audio), self.task.audio_embeddings(audio)
            with autocast:
                strong, _ = self.task.detect(inputs, self.model, embeddings)
            strong = strong.float().cpu().numpy()
            mel = None
            if self.keep_spectrogram:
                mel = inputs if torch.is_tensor(inputs) else self.task.mel(audio)
                mel = mel[..., :self.geometry.window_frames * self.mel_frames_per_frame].float().cpu().numpy()
        if strong.shape[1:] != (len(self.labels), self.geometry.window_frames):
            raise RuntimeError(f"the model gives strong outputs of shape {strong.shape[1:]} per window, the config's "
                               f"label encoder expects {(len(self.labels), self.geometry.window_frames)}")
        for row, (state, index, _) in enumerate(batch):
            if state.error is None:
                start = self.geometry.start_frame(index)
                state.scores.add(start, strong[row])
                if state.spectrogram is not None:
                    state.spectrogram.add(start, mel[row])
            state.received += 1

    # ------------------------------------------------------------------ results
    def _finish(self, state: _FileState) -> FileResult:
        """Post-process the averaged frames of all windows, then keep the frames of the real audio: exactly what
        the trainer's test step does with a padded clip (`decode_strong_scores` with the clip's duration)."""
        geometry = self.geometry
        covered = geometry.covered_frames(state.n_windows)
        duration = state.n_samples / geometry.sample_rate
        encoder = ManyHotEncoder.from_state_dict(
            {**self.task.encoder.state_dict(), "audio_len": max(duration, covered * geometry.frame_seconds)})
        raw, scores = decode_strong_scores(state.scores.average(covered)[None], [state.path.name], encoder,
                                           self.median_window, durations={state.path.name: duration})
        clip = audio_id(state.path.name)
        table = scores[clip] if self.postprocess is None else apply_postprocessing(raw, self.postprocess)[clip]
        spectrogram = None
        if state.spectrogram is not None:
            spectrogram = state.spectrogram.average(covered)[:, :len(raw[clip]) * self.mel_frames_per_frame]
        return FileResult(state.path, duration, geometry.frame_seconds, table,
                          detections_from_scores(table, state.path.name, self.thresholds), spectrogram)

    def run(self, paths: Iterable[str | Path], progress: Callable[[int], None] | None = None
            ) -> Iterator[FileResult | Skipped]:
        """One `FileResult` or `Skipped` per path, in order; windows of consecutive files share batches.

        A file that cannot be read (missing, vanished, not audio, empty, corrupt halfway) is `Skipped`
        with a reason naming it; the other files are unaffected. `progress(n)` is called with the number
        of windows of each processed batch.
        """
        spectrogram = (self.task.mel.n_mels, self.mel_frames_per_frame) if self.keep_spectrogram else None
        open_states: deque[_FileState] = deque()
        batch: list[tuple[_FileState, int, np.ndarray]] = []

        def flush():
            if batch:
                self._forward(batch)
                if progress is not None:
                    progress(len(batch))
                batch.clear()

        def finished() -> Iterator[FileResult | Skipped]:
            while open_states and open_states[0].done:
                state = open_states.popleft()
                yield Skipped(state.path, state.error) if state.error is not None else self._finish(state)

        for path in paths:
            state = _FileState(Path(path), len(self.labels), self.weights, spectrogram)
            open_states.append(state)
            try:
                state.reserve(self.geometry.covered_frames(self.expected_windows(state.path)))
                for index, window in self._windows(state):
                    batch.append((state, index, window))
                    if len(batch) >= self.batch_size:
                        flush()
                        yield from finished()
            except AudioInputError as error:
                state.error = str(error)
            yield from finished()
        flush()
        yield from finished()


def detect_file(checkpoint_or_task, path: str | Path, model: str = "teacher", **options
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Detect events in one audio file of any length, rate and channel count.

    `checkpoint_or_task`: a checkpoint path or loaded dict, a `SEDTask`, or a `Detector`. `options` are
    those of `Detector` (hop, taper, median_window, threshold, batch_size, device, precision, postprocess).
    Returns (post-processed frame scores as a sed_scores_eval table, detections
    `filename onset offset event_label`). Raises `AudioInputError` naming an unusable file.
    """
    if isinstance(checkpoint_or_task, Detector):
        detector = checkpoint_or_task
    else:
        task = checkpoint_or_task if isinstance(checkpoint_or_task, SEDTask) else load_task(checkpoint_or_task)
        detector = Detector(task, model=model, **options)
    (result,) = detector.run([path])
    if isinstance(result, Skipped):
        raise AudioInputError(result.reason)
    return result.scores, result.detections
