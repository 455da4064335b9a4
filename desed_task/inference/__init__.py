"""Sound event detection on audio files of any length, rate and channel count with any trained SED checkpoint
(`python -m desed_task.inference`, `detect_file`)."""
from desed_task.inference.audio import AudioInputError, read_blocks
from desed_task.inference.detect import Detector, FileResult, Skipped, detect_file, parse_thresholds
from desed_task.inference.model import CheckpointError, load_task
from desed_task.inference.windows import WindowGeometry

__all__ = [
    "AudioInputError", "CheckpointError", "Detector", "FileResult", "Skipped",
    "WindowGeometry", "detect_file", "load_task", "parse_thresholds", "read_blocks",
]
