"""Cost of checking audio files for truncation at dataset-build time, against decoding them in full.

Writes N 10 s 16 kHz mono clips (16-bit WAV, and FLAC) into a temporary folder, then times, per format:
- `check_audio_files`: what the manifest does for every listed file (soundfile.info + `check_complete`:
  the WAV header's data size against the file size, or a decode of the last 1,024 frames for FLAC);
- soundfile.info alone (the check before truncation was caught), for the added cost;
- a full decode of every file (soundfile.read), the alternative that the cheap check avoids;
- `source_stamps`: the size + modification time the resample cache reads of every source on each run.
The files were just written, so they are in the page cache: disk reads are not counted (a full decode of
real DESED from a cold disk also reads every byte, the cheap check a few KB per file).
Prints a table and one JSON line. Usage: python benchmarks/data_validation.py [--n_files 1000]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from desed_task.data.manifest import check_audio_files
from desed_task.data.resample import source_stamps


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n_files", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = {"n_files": args.n_files, "clip_seconds": args.seconds}
    with tempfile.TemporaryDirectory() as tmp:
        for extension in ("wav", "flac"):
            folder = Path(tmp) / extension
            folder.mkdir()
            names = [f"{i:05d}.{extension}" for i in range(args.n_files)]
            for name in names:
                sf.write(str(folder / name), 0.1 * rng.standard_normal(int(args.seconds * 16000)), 16000,
                         subtype="PCM_16")
            info = timed(lambda: [sf.info(str(folder / name)) for name in names])
            check = timed(lambda: check_audio_files(folder, names, "bench"))
            decode = timed(lambda: [sf.read(str(folder / name), dtype="float32") for name in names])
            stamps = timed(lambda: source_stamps(folder))
            results[extension] = {"info_only_s": round(info, 3), "check_s": round(check, 3),
                                  "full_decode_s": round(decode, 3), "cache_stamps_s": round(stamps, 3),
                                  "check_ms_per_file": round(1000 * check / args.n_files, 3),
                                  "full_decode_ms_per_file": round(1000 * decode / args.n_files, 3)}
    print(f"{'format':<6} {'info only (s)':>14} {'check (s)':>10} {'full decode (s)':>16} {'cache stamps (s)':>17}   "
          f"({args.n_files} files of {args.seconds:g} s)")
    for extension in ("wav", "flac"):
        row = results[extension]
        print(f"{extension:<6} {row['info_only_s']:>14.3f} {row['check_s']:>10.3f} {row['full_decode_s']:>16.3f} "
              f"{row['cache_stamps_s']:>17.3f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
