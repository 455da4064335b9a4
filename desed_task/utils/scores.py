"""The collected test-metric file `misc/scores.txt` (IRCT paper format): write, load, summarise.

Format, one block per run: the run name line, an empty line, `metric<TAB>value` lines, then blank
lines before the next block. Writing a run name that is already present replaces its block.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import pandas as pd

from desed_task.utils.errors import BadInput
from desed_task.utils.files import write_text

PSDS2_METRIC = "test/student/psds2_sed_scores_eval"
RUN_NAME_PATTERNS = (
    (re.compile(r"^default_(?P<seed>\d+)$"), "default"),
    (re.compile(r"^irct_t(?P<aug_set>\d+)_l(?P<layer>\d+)_(?P<seed>\d+)$"), "irct"),
    (re.compile(r"^probe_h(?P<probe_size>\d+)_l(?P<layer>\d+)_(?P<seed>\d+)$"), "probe"),
)
GROUP_COLUMNS = ["kind", "aug_set", "layer", "probe_size"]


def read_score_blocks(path: str | Path) -> dict[str, dict[str, float]]:
    """Run name -> {metric: value}, in file order (a later block of the same name wins)."""
    blocks: dict[str, dict[str, float]] = {}
    current = None
    for line_number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        if "\t" in line:
            if current is None:
                raise BadInput(f"{path}:{line_number}: metric line before any run name")
            metric, value = line.rsplit("\t", 1)
            blocks[current][metric] = float(value)
        else:
            current = line.strip()
            blocks[current] = {}
    return blocks


def load_score_file(path: str | Path) -> pd.DataFrame:
    """One row per run (index: run name), one float column per metric (NaN where a run lacks it)."""
    blocks = read_score_blocks(path)
    frame = pd.DataFrame.from_dict(blocks, orient="index", dtype=float)
    frame.index.name = "run"
    return frame


def format_block(run_name: str, metrics: Mapping[str, float]) -> str:
    lines = [run_name, ""] + [f"{name}\t{float(value)!r}" for name, value in metrics.items()]
    return "\n".join(lines) + "\n\n\n"


def write_scores(path: str | Path, run_name: str, metrics: Mapping[str, float]) -> None:
    """Append the run's block, replacing an earlier block of the same name; atomic (`write_text`)."""
    if not run_name.strip() or "\t" in run_name or "\n" in run_name:
        raise BadInput(f"invalid run name {run_name!r}")
    path = Path(path)
    blocks = read_score_blocks(path) if path.is_file() else {}
    blocks.pop(run_name, None)
    blocks[run_name] = {name: float(value) for name, value in metrics.items()}
    text = "".join(format_block(name, values) for name, values in blocks.items())
    write_text(path, text)


def parse_run_name(run_name: str) -> dict:
    """(kind, aug_set, layer, probe_size, seed) of `default_N`, `irct_tA_lL_N`, `probe_hH_lL_N`.

    aug_set is "tau1"/"tau2" for IRCT runs; fields a run kind lacks are None; unknown names give kind "other".
    """
    for pattern, kind in RUN_NAME_PATTERNS:
        match = pattern.match(run_name)
        if match:
            fields = match.groupdict()
            return {
                "kind": kind,
                "aug_set": f"tau{fields['aug_set']}" if "aug_set" in fields else None,
                "layer": int(fields["layer"]) if "layer" in fields else None,
                "probe_size": int(fields["probe_size"]) if "probe_size" in fields else None,
                "seed": int(fields["seed"]),
            }
    return {"kind": "other", "aug_set": None, "layer": None, "probe_size": None, "seed": None}


def run_groups(df: pd.DataFrame) -> pd.DataFrame:
    """Columns kind, aug_set, layer, probe_size, seed parsed from the run names of a score DataFrame."""
    parsed = pd.DataFrame([parse_run_name(name) for name in df.index], index=df.index)
    for column in ("layer", "probe_size", "seed"):
        parsed[column] = parsed[column].astype("Int64")
    return parsed


def summarise_over_seeds(df: pd.DataFrame, metric: str = PSDS2_METRIC) -> pd.DataFrame:
    """Mean, std (sample, ddof=1) and n of `metric` over seeds per (kind, aug_set, layer, probe_size)."""
    columns = ["kind", "aug_set", "layer", "probe_size", "mean", "std", "n"]
    if df.empty or metric not in df.columns:
        return pd.DataFrame(columns=columns)
    groups = run_groups(df)
    groups[metric] = df[metric]
    summary = (
        groups.dropna(subset=[metric])
        .groupby(GROUP_COLUMNS, dropna=False, sort=True)[metric]
        .agg(["mean", "std", "count"])
        .rename(columns={"count": "n"})
        .reset_index()
    )
    return summary[columns]


def baseline_summary(summary: pd.DataFrame) -> pd.Series | None:
    """The default-baseline row (mean, std, n) of a `summarise_over_seeds` table, None when absent."""
    rows = summary[summary["kind"] == "default"]
    return rows.iloc[0] if len(rows) else None
