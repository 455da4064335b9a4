"""One line on a finished run: wall time and the headline test metrics of its `test_metrics.json`.

    python -m desed_task.utils.run_summary exp/demo --seconds 240

A log directory that already held a run sends the next run to `version_N` inside it: the newest
`test_metrics.json` of the directory and its `version_*` folders is the latest run's.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HEADLINE = ("psds1_sed_scores_eval", "psds2_sed_scores_eval")


def latest_metrics(log_dir: str | Path) -> Path:
    """The newest `test_metrics.json` in `log_dir` or its `version_*` folders (a re-used log directory)."""
    log_dir = Path(log_dir)
    found = [path for path in (log_dir / "test_metrics.json", *log_dir.glob("version_*/test_metrics.json"))
             if path.is_file()]
    if not found:
        raise FileNotFoundError(f"no test_metrics.json in {log_dir} or its version_* folders")
    return max(found, key=lambda path: path.stat().st_mtime)


def run_summary(metrics: dict, seconds: float | None = None, source: str = "") -> str:
    """'<m> min <s> s; teacher PSDS1 x PSDS2 y, student PSDS1 x PSDS2 y (source)' (sed_scores_eval PSDS)."""
    parts = []
    if seconds is not None:
        parts.append(f"{int(seconds) // 60} min {int(seconds) % 60:02d} s wall")
    parts.append(", ".join(
        f"{model} PSDS1 {metrics[f'test/{model}/{HEADLINE[0]}']:.4f} PSDS2 {metrics[f'test/{model}/{HEADLINE[1]}']:.4f}"
        for model in ("teacher", "student")))
    return "; ".join(parts) + (f" ({source})" if source else "")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log_dir", help="the run's --log_dir")
    parser.add_argument("--seconds", type=float, default=None, help="the run's wall time")
    parser.add_argument("--prefix", default="", help="text before the summary, e.g. 'demo:'")
    args = parser.parse_args(argv)
    path = latest_metrics(args.log_dir)
    line = run_summary(json.loads(path.read_text()), args.seconds, str(path))
    print(f"{args.prefix} {line}".strip())


if __name__ == "__main__":
    main()
