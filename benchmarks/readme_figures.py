"""Re-compute every machine-independent figure that README.md states and report those that no longer match.

Each figure below is a regular expression that finds the stated number(s) in README.md (its groups) and a
function that re-computes them with the code of this checkout, formatted as the README writes them:
- `parameters`: CRNN parameter counts of `demo.yaml` and `default.yaml`;
- `anchors`: the evaluation CLI on the official baseline's real detections (`../shared/anchors/desed`);
- `demo`: the `make demo` table and results row, from a demo run's `test_metrics.json` (the newest in the
  log directory or its `version_N` folders; the saved config must be `demo.yaml`'s). Without
  `--demo_log_dir` the demo is run into a temporary folder (minutes).
Machine-dependent figures (wall times, throughput, speed) are not checked; see the README.

    python benchmarks/readme_figures.py --demo_log_dir exp/demo          # check (exit status 1 on drift)
    python benchmarks/readme_figures.py --demo_log_dir exp/demo --write  # write the computed figures
    python benchmarks/readme_figures.py --skip demo                      # parameters and anchors only

A figure whose text is no longer found in README.md counts as drift too. Prints a table and JSON (`--out`).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from desed_task.utils.run_summary import latest_metrics

REPO = Path(__file__).resolve().parents[1]
DEMO_CONF = REPO / "confs/dcase2022_task4_baseline/demo.yaml"
DEFAULT_CONF = REPO / "confs/dcase2022_task4_baseline/default.yaml"
SUMMARY_METRICS = ("psds1_sed_scores_eval", "psds2_sed_scores_eval", "psds1_psds_eval", "psds2_psds_eval",
                   "intersection_f1_macro", "event_f1_macro", "weak_f1_macro")


@dataclass
class Figure:
    """Numbers stated in README.md: `pattern`'s groups (searched after `section` when given, up to the next
    blank line), re-computed by `compute(sources)` as strings formatted like the README's."""

    name: str
    group: str
    pattern: str
    compute: Callable[["Sources"], list[str]]
    section: str | None = None


def four(value: float) -> str:
    return f"{value:.4f}"


def percent(value: float) -> str:
    return f"{100 * value:.2f}"


class Sources:
    """What the figures are computed from, each computed once, on first use."""

    def __init__(self, anchors: Path, demo_log_dir: Path | None):
        self.anchors = anchors
        self.demo_log_dir = demo_log_dir
        self._cache: dict[str, object] = {}

    def _once(self, key: str, make: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def parameters(self, conf: Path) -> int:
        def count() -> int:
            from desed_task.nnet.crnn import CRNN
            from desed_task.utils.config import load_config

            model = CRNN(**load_config(str(conf))["net"])
            return sum(parameter.numel() for parameter in model.parameters())
        return self._once(f"parameters:{conf}", count)

    def evaluation(self, source: str) -> dict:
        """The CLI's JSON report (`--allow_events_past_duration`, as the README states) on the baseline
        student's detections at 0.5 (`detections`; `legacy_detections` with the float parser of the
        published reports) or its 50 operating points."""
        def report() -> dict:
            from desed_task.evaluation.__main__ import main as evaluation_cli

            desed = self.anchors / "desed"
            student = desed / "baseline_student"
            detections = ["--detections", str(student / "predictions0.5.csv")]
            inputs = {"detections": detections, "legacy_detections": [*detections, "--float_precision", "legacy"],
                      "operating_points": ["--operating_points", str(student / "predictions_operating_points")]}
            with tempfile.TemporaryDirectory() as folder:
                out = Path(folder) / "report.json"
                with contextlib.redirect_stdout(io.StringIO()):  # its printed report
                    code = evaluation_cli(["--ground_truth", str(desed / "validation.tsv"), "--durations",
                                           str(desed / "validation_durations.tsv"), *inputs[source],
                                           "--allow_events_past_duration", "--out",
                                           str(out)])
                if code != 0:
                    raise RuntimeError(f"the evaluation CLI failed on {source} (exit status {code})")
                return json.loads(out.read_text())
        return self._once(f"evaluation:{source}", report)

    def demo(self) -> dict:
        """`test_metrics.json` of the demo log directory (after checking its config), or of a fresh demo run."""
        def metrics() -> dict:
            log_dir = self.demo_log_dir
            if log_dir is None:
                log_dir = Path(tempfile.mkdtemp(prefix="readme_demo_"))
                command = [sys.executable, "recipes/dcase2022_task4_baseline/train_sed.py", "--conf_file",
                           str(DEMO_CONF), "--log_dir", str(log_dir), "--gpus", "0"]
                print("running the demo:", " ".join(command), file=sys.stderr)
                subprocess.run(command, cwd=REPO, check=True)
            path = latest_metrics(log_dir)  # exp/demo, or its newest version_N after repeated demos
            check_demo_config(path.parent)
            return json.loads(path.read_text())
        return self._once("demo", metrics)


def check_demo_config(log_dir: Path) -> None:
    """The run in `log_dir` used demo.yaml as it is now (the `data` paths aside, which the mini dataset sets)."""
    import yaml

    saved_path = log_dir / "config.yaml"
    if not saved_path.is_file():
        raise FileNotFoundError(f"{saved_path}: not found (is {log_dir} the log directory of a demo run?)")
    saved = yaml.safe_load(saved_path.read_text())
    current = yaml.safe_load(DEMO_CONF.read_text())
    differing = sorted(section for section in set(saved) | set(current)
                       if section != "data" and saved.get(section) != current.get(section))
    if differing:
        raise ValueError(f"{saved_path} differs from {DEMO_CONF.relative_to(REPO)} in {differing}: "
                         "re-run `make demo` with the current config")


def demo_row(metric: str) -> Callable[[Sources], list[str]]:
    return lambda sources: [four(sources.demo()[f"test/{model}/{metric}"]) for model in ("student", "teacher")]


FIGURES = [
    Figure("demo CRNN parameters (make demo section)", "parameters", r"a narrow CRNN \((\d[\d,]*(?:\.\d+)?) parameters\)",
           lambda s: [f"{s.parameters(DEMO_CONF):,}"]),
    Figure("demo CRNN parameters (throughput)", "parameters", r"the demo CRNN \(`demo\.yaml`, (\d[\d,]*(?:\.\d+)?) parameters",
           lambda s: [f"{s.parameters(DEMO_CONF):,}"]),
    Figure("baseline CRNN parameters (throughput)", "parameters", r"\(`default\.yaml`, (\d[\d,]*(?:\.\d+)?) parameters",
           lambda s: [f"{s.parameters(DEFAULT_CONF):,}"]),
    Figure("baseline student detections: CLI figures", "anchors",
           r"the CLI gives event F1\s+(\d[\d,]*(?:\.\d+)?) % micro / (\d[\d,]*(?:\.\d+)?) % macro, segment\s+F1 (\d[\d,]*(?:\.\d+)?) % micro / (\d[\d,]*(?:\.\d+)?) % macro, intersection F1 (\d[\d,]*(?:\.\d+)?), "
           r"and from\s+its 50 operating points PSDS1 (\d[\d,]*(?:\.\d+)?), PSDS2 (\d[\d,]*(?:\.\d+)?)",
           lambda s: [*(percent(s.evaluation("detections")[k]) for k in (
               "event_f1_micro", "event_f1_macro", "segment_f1_micro", "segment_f1_macro")),
               four(s.evaluation("detections")["intersection_f1_macro"]),
               four(s.evaluation("operating_points")["psds1_psds_eval"]),
               four(s.evaluation("operating_points")["psds2_psds_eval"])]),
    Figure("baseline student detections: legacy event F1", "anchors",
           r"With `--float_precision legacy` [^.]*\) the event F1 is (\d[\d,]*(?:\.\d+)?) % micro / (\d[\d,]*(?:\.\d+)?) % macro",
           lambda s: [percent(s.evaluation("legacy_detections")[k]) for k in ("event_f1_micro", "event_f1_macro")]),
    Figure("baseline student detections: results row", "anchors",
           r"\| official baseline student's real detections, [^|]*\| DESED validation \(1,168 clips\) \| "
           r"(\d[\d,]*(?:\.\d+)?) \| (\d[\d,]*(?:\.\d+)?) \| (\d[\d,]*(?:\.\d+)?) % \| (\d[\d,]*(?:\.\d+)?) % \|",
           lambda s: [four(s.evaluation("operating_points")["psds1_psds_eval"]),
                      four(s.evaluation("operating_points")["psds2_psds_eval"]),
                      percent(s.evaluation("detections")["intersection_f1_macro"]),
                      percent(s.evaluation("legacy_detections")["event_f1_macro"])]),
    *(Figure(f"demo table: {metric}", "demo", rf"^\| {metric} \| (\d[\d,]*(?:\.\d+)?) \| \**(\d[\d,]*(?:\.\d+)?)\**",
             demo_row(metric), section=r"^\| mini test set \(100 clips\), `make demo` \|")
      for metric in SUMMARY_METRICS),
    Figure("demo results row (teacher)", "demo",
           r"\| this code, `make demo` \(teacher, threshold-independent PSDS\) \| [^|]*\| (\d[\d,]*(?:\.\d+)?) \| (\d[\d,]*(?:\.\d+)?) \| "
           r"(\d[\d,]*(?:\.\d+)?) % \| (\d[\d,]*(?:\.\d+)?) % \|",
           lambda s: [four(s.demo()["test/teacher/psds1_sed_scores_eval"]),
                      four(s.demo()["test/teacher/psds2_sed_scores_eval"]),
                      percent(s.demo()["test/teacher/intersection_f1_macro"]),
                      percent(s.demo()["test/teacher/event_f1_macro"])]),
]


def find(figure: Figure, text: str) -> list[re.Match]:
    """Every match of the figure's pattern (inside its section when it has one)."""
    start, end = 0, len(text)
    if figure.section is not None:
        section = re.search(figure.section, text, re.MULTILINE)
        if section is None:
            return []
        start = section.start()
        blank = text.find("\n\n", start)
        end = len(text) if blank < 0 else blank
    pattern = re.compile(figure.pattern, re.MULTILINE)
    return list(pattern.finditer(text, start, end))


def check(text: str, sources: Sources, skip: set[str]) -> tuple[list[dict], list[tuple[int, int, str]]]:
    """One result per figure, and the (start, end, computed) spans of every stated number."""
    results, spans = [], []
    for figure in FIGURES:
        if figure.group in skip:
            continue
        matches = find(figure, text)
        result = {"figure": figure.name, "group": figure.group, "readme": [m.groups() for m in matches]}
        try:
            computed = figure.compute(sources)
        except Exception as error:  # one failing source must not hide the other figures
            result.update(computed=None, status=f"error: {error}")
            results.append(result)
            continue
        result["computed"] = computed
        if not matches:
            result["status"] = "not found in README.md"
        elif all(list(m.groups()) == computed for m in matches):
            result["status"] = "ok"
        else:
            result["status"] = "differs"
        for match in matches:
            spans += [(match.start(i + 1), match.end(i + 1), value) for i, value in enumerate(computed)]
        results.append(result)
    return results, spans


def rewrite(text: str, spans: list[tuple[int, int, str]]) -> str:
    for start, end, value in sorted(spans, reverse=True):
        text = text[:start] + value + text[end:]
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", default=str(REPO / "README.md"))
    parser.add_argument("--demo_log_dir", default=None,
                        help="log directory of a `make demo` run (default: run the demo into a temporary folder)")
    parser.add_argument("--anchors", default=str(REPO.parent / "shared" / "anchors"),
                        help="the reference files (anchors group skipped when absent)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("parameters", "anchors", "demo"))
    parser.add_argument("--write", action="store_true", help="write the computed figures into the README")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    skip = set(args.skip)
    if "anchors" not in skip and not (Path(args.anchors) / "desed").is_dir():
        print(f"anchors group skipped: {args.anchors}/desed not found", file=sys.stderr)
        skip.add("anchors")
    readme = Path(args.readme)
    text = readme.read_text()
    sources = Sources(Path(args.anchors), Path(args.demo_log_dir) if args.demo_log_dir else None)
    results, spans = check(text, sources, skip)
    width = max(len(r["figure"]) for r in results)
    for result in results:
        stated = "; ".join(", ".join(groups) for groups in result["readme"]) or "-"
        computed = ", ".join(result["computed"] or []) or "-"
        print(f"{result['figure']:<{width}}  {result['status']:<22}  README: {stated}  computed: {computed}")
    summary = {"readme": str(readme), "skipped": sorted(skip), "figures": results}
    print(json.dumps(summary, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2))
    if args.write:
        updated = rewrite(text, spans)
        if updated != text:
            readme.write_text(updated)
            print(f"wrote the computed figures into {readme}", file=sys.stderr)
        return int(any(r["status"] not in ("ok", "differs") for r in results))
    return int(any(r["status"] != "ok" for r in results))


if __name__ == "__main__":
    sys.exit(main())
