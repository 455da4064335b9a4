"""16 kHz resample cache: build `*_folder` from `*_folder_44k` once, safely, and keep it in step with its source.

Safety properties:
- every output file is written to a temporary name in the destination folder and moved into place
  with os.replace, so a reader never sees a half-written file;
- the marker `.resample_complete.json` records the size and modification time (ns) of every source file
  it was built from; a source that is new, changed (re-downloaded, repaired) or gone since is converted
  again (or its copy removed) on the next call, the others are kept;
- a source that cannot be decoded completely (unreadable, or fewer frames than its header declares: a
  truncated download) gets no copy; the marker lists it with the reason, which the manifest check reports;
- the marker is rewritten atomically every CHECKPOINT_EVERY files and at the end (`complete` true), so an
  interrupted build resumes with what it had converted and cleans its leftover temporary files;
- concurrent builders (several ranks or jobs) serialise on an fcntl lock file in the destination folder.
"""
from __future__ import annotations

import logging
from pathlib import Path

import soundfile as sf

from desed_task.data.audio import IncompleteAudioError, list_audio_files, read_complete, resample, to_mono
from desed_task.utils.errors import MissingInput
from desed_task.utils.files import atomic_path, folder_lock, read_json, write_json

log = logging.getLogger(__name__)

COMPLETE_MARKER = ".resample_complete.json"
MARKER_VERSION = 2
CHECKPOINT_EVERY = 256


def source_stamps(folder: Path) -> dict[str, list[int]]:
    """{name: [size in bytes, modification time in ns]} of the audio files of `folder`."""
    stamps = {}
    for name in list_audio_files(folder):
        stat = (folder / name).stat()
        stamps[name] = [stat.st_size, stat.st_mtime_ns]
    return stamps


def read_marker(dst: str | Path, target_fs: int | None = None) -> dict | None:
    """The cache marker of `dst` ({source, target_fs, complete, sources, rejected}); None when absent,
    unreadable, of an older format or (when given) of another target rate."""
    marker = read_json(Path(dst) / COMPLETE_MARKER)
    if not isinstance(marker, dict) or marker.get("version") != MARKER_VERSION:
        return None
    if target_fs is not None and marker.get("target_fs") != target_fs:
        return None
    return marker


def rejected_sources(dst: str | Path) -> dict[str, str]:
    """{name: reason} of the source files the cache in `dst` could not convert (unreadable or truncated)."""
    marker = read_marker(dst)
    if marker is None:
        return {}
    return {name: f"source {Path(marker['source']) / name} not resampled: {reason}"
            for name, reason in marker["rejected"].items()}


def _is_complete(dst: Path, target_fs: int, stamps: dict[str, list[int]]) -> bool:
    marker = read_marker(dst, target_fs)
    if marker is None or not marker.get("complete") or marker["sources"] != stamps:
        return False
    present = set(list_audio_files(dst))
    return all(name in present for name in stamps if name not in marker["rejected"])


def _write_marker(dst: Path, src: Path, target_fs: int, sources: dict, rejected: dict, complete: bool) -> None:
    marker = {"version": MARKER_VERSION, "source": str(src.resolve()), "target_fs": target_fs,
              "complete": complete, "sources": sources, "rejected": rejected}
    write_json(dst / COMPLETE_MARKER, marker)


def write_audio_atomic(path: Path, audio, samplerate: int, subtype: str = "PCM_16") -> None:
    """Write audio (format from the suffix) under a temporary name beside `path`, then rename it into place."""
    file_format = "FLAC" if path.suffix.lower() == ".flac" else "WAV"
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio, samplerate, subtype=subtype, format=file_format)


def _convert(source: Path, target: Path, target_fs: int) -> str | None:
    """Write the mono `target_fs` copy of `source`; return why it was refused, None when written."""
    try:
        audio, fs = read_complete(source)
    except IncompleteAudioError as error:
        return str(error)
    except Exception as error:  # soundfile raises several types for corrupt files
        return f"unreadable: {error}".replace("\t", " ").replace("\n", " ")
    write_audio_atomic(target, resample(to_mono(audio), fs, target_fs).clip(-1.0, 1.0), target_fs)
    return None


def resample_folder(src_folder: str | Path, dst_folder: str | Path, target_fs: int = 16000) -> bool:
    """Make `dst_folder` a mono `target_fs` copy of the complete audio files of `src_folder`.

    Returns True when files were (re)computed or removed, False when the cache was already up to date.
    """
    src, dst = Path(src_folder), Path(dst_folder)
    if not src.is_dir():
        raise MissingInput(f"resample source folder not found: {src}")
    if _is_complete(dst, target_fs, source_stamps(src)):
        return False
    with folder_lock(dst, "resample"):
        stamps = source_stamps(src)
        if _is_complete(dst, target_fs, stamps):
            return False
        for leftover in dst.glob(".*.tmp"):
            leftover.unlink()
        previous = read_marker(dst, target_fs) or {"sources": {}, "rejected": {}}
        for gone in set(previous["sources"]) - set(stamps):
            (dst / gone).unlink(missing_ok=True)
        present = set(list_audio_files(dst))
        done = {name: stamp for name, stamp in previous["sources"].items() if stamps.get(name) == stamp
                and (name in present or name in previous["rejected"])}
        rejected = {name: reason for name, reason in previous["rejected"].items() if name in done}
        todo = [name for name in stamps if name not in done]
        log.info("resampling %d new or changed file(s) from %s to %s at %d Hz", len(todo), src, dst, target_fs)
        for count, name in enumerate(todo, 1):
            reason = _convert(src / name, dst / name, target_fs)
            if reason is None:
                rejected.pop(name, None)
            else:
                log.warning("not resampling %s: %s", src / name, reason)
                rejected[name] = reason
                (dst / name).unlink(missing_ok=True)
            done[name] = stamps[name]
            if count % CHECKPOINT_EVERY == 0:
                _write_marker(dst, src, target_fs, done, rejected, complete=False)
        _write_marker(dst, src, target_fs, {name: stamps[name] for name in stamps}, rejected, complete=True)
    return True
