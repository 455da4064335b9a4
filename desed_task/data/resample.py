"""16 kHz resample cache: build `*_folder` from `*_folder_44k` once, safely.

Safety properties:
- every output file is written to a temporary name in the destination folder and moved into place
  with os.replace, so a reader never sees a half-written file;
- a completion marker is written last; without it (or when a source file has no copy) the build resumes,
  converting only what is missing and deleting leftover temporary files of an interrupted build;
- concurrent builders (several ranks or jobs) serialise on an fcntl lock file in the destination folder.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path

import soundfile as sf

from desed_task.data.audio import list_audio_files, read_audio
from desed_task.utils.errors import MissingInput

log = logging.getLogger(__name__)

COMPLETE_MARKER = ".resample_complete.json"
LOCK_FILE = ".resample.lock"
TMP_SUFFIX = ".tmp"


@contextmanager
def folder_lock(folder: Path):
    """Exclusive inter-process lock held on `folder/.resample.lock` for the duration of the block."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_complete(src: Path, dst: Path, target_fs: int) -> bool:
    marker = dst / COMPLETE_MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except ValueError:
        return False
    if recorded.get("target_fs") != target_fs:
        return False
    present = set(list_audio_files(dst)) | set(recorded.get("unreadable", []))
    return all(name in present for name in list_audio_files(src))


def write_audio_atomic(path: Path, audio, samplerate: int, subtype: str = "PCM_16") -> None:
    """Write audio (format from the suffix) under a temporary name beside `path`, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    file_format = "FLAC" if path.suffix.lower() == ".flac" else "WAV"
    sf.write(str(tmp), audio, samplerate, subtype=subtype, format=file_format)
    os.replace(tmp, path)


def resample_folder(src_folder: str | Path, dst_folder: str | Path, target_fs: int = 16000) -> bool:
    """Make `dst_folder` a complete mono `target_fs` copy of the audio in `src_folder`.

    Returns True when files were (re)computed, False when the cache was already complete.
    """
    src, dst = Path(src_folder), Path(dst_folder)
    if not src.is_dir():
        raise MissingInput(f"resample source folder not found: {src}")
    if _is_complete(src, dst, target_fs):
        return False
    with folder_lock(dst):
        if _is_complete(src, dst, target_fs):
            return False
        for leftover in dst.glob(f".*{TMP_SUFFIX}"):
            leftover.unlink()
        (dst / COMPLETE_MARKER).unlink(missing_ok=True)
        present = set(list_audio_files(dst))
        todo = [name for name in list_audio_files(src) if name not in present]
        log.info("resampling %d file(s) from %s to %s at %d Hz", len(todo), src, dst, target_fs)
        unreadable = []
        for name in todo:
            try:
                audio = read_audio(src / name, target_fs)
            except Exception as error:  # a corrupt source is reported by the manifest check, not fatal here
                log.warning("cannot resample unreadable file %s: %s", src / name, error)
                unreadable.append(name)
                continue
            write_audio_atomic(dst / name, audio.clip(-1.0, 1.0), target_fs)
        marker_tmp = dst / f".{COMPLETE_MARKER}{TMP_SUFFIX}"
        summary = {"source": str(src.resolve()), "target_fs": target_fs, "unreadable": unreadable}
        marker_tmp.write_text(json.dumps(summary))
        os.replace(marker_tmp, dst / COMPLETE_MARKER)
    return True
