"""Re-compute the machine-independent figures of README.md, docs/ and benchmarks/RESULTS.md, and check demo
runs against the spread of their metrics over seeds; report what no longer holds.

- `parameters`: CRNN parameter counts of `demo.yaml` and `default.yaml`, as the documents state them;
- `anchors`: the evaluation CLI on the official baseline's real detections (`../shared/anchors/desed`);
- `demo`: each demo's newest `test_metrics.json` (in its log directory or its `version_N` folders) against
  `benchmarks/demo_spread.json`: a metric is ok when it lies in [min - tolerance, max + tolerance] of the
  spread recorded over seeds (demo metrics move with the seed and, through floating-point summation order,
  with the CPU kind, so a single run is not compared digit for digit). A demo whose spread is not recorded
  yet, or whose run is absent, is reported and counts as not ok.

    python benchmarks/readme_figures.py --demo_log_dir exp/demo        # parameters, anchors, the baseline demo
    python benchmarks/readme_figures.py                                # every demo, at its log_dir in the spread file
    python benchmarks/readme_figures.py --run                          # ... running the demos whose outputs are absent
    python benchmarks/readme_figures.py --log_dir atst_sed_stage2=exp/demo_atst/stage2 --skip parameters anchors

Exit status 1 when a figure differs or cannot be checked. Prints a table and JSON (`--out`).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from desed_task.utils.run_summary import latest_metrics

REPO = Path(__file__).resolve().parents[1]
DEMO_CONF = REPO / "confs/dcase2022_task4_baseline/demo.yaml"
DEFAULT_CONF = REPO / "confs/dcase2022_task4_baseline/default.yaml"


@dataclasses.dataclass
class Figure:
    """Numbers stated in `document` (relative to the repository): `pattern`'s groups, re-computed by
    `compute(sources)` as strings formatted like the document's."""

    name: str
    group: str
    document: str
    pattern: str
    compute: Callable[["Sources"], list[str]]


@dataclasses.dataclass
class DemoSpread:
    """One demo's entry of `demo_spread.json`: where its run lands and each metric's {median, min, max}."""

    name: str
    command: str
    log_dir: str
    metrics: dict[str, dict | None]
    tolerance: float
    config: str | None = None
    seeds: tuple[int, ...] = ()  # the seeds the spread was recorded over
    overrides: tuple[str, ...] = ()  # the make target's `key=value` overrides of `config`
    run_specific: tuple[str, ...] = ()  # dotted keys each run sets to its own value (a checkpoint path)

    @classmethod
    def load_all(cls, path: Path) -> list["DemoSpread"]:
        fields = {field.name for field in dataclasses.fields(cls)}
        return [cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry.items() if k in fields})
                for entry in json.loads(path.read_text())["demos"]]


def four(value: float) -> str:
    return f"{value:.4f}"


def percent(value: float) -> str:
    return f"{100 * value:.2f}"


class Sources:
    """What the figures are computed from, each computed once, on first use."""

    def __init__(self, anchors: Path):
        self.anchors = anchors
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


def check_demo_config(log_dir: Path, conf: Path, overrides=(), run_specific=()) -> None:
    """The run in `log_dir` used `conf` as it is now with the demo's `overrides` (the `data` paths aside, which
    the mini dataset sets, and the `run_specific` keys)."""
    import yaml

    from desed_task.utils.config import apply_overrides

    saved_path = log_dir / "config.yaml"
    if not saved_path.is_file():
        raise FileNotFoundError(f"{saved_path}: not found (is {log_dir} the log directory of a demo run?)")
    saved = yaml.safe_load(saved_path.read_text())
    current = apply_overrides(yaml.safe_load(conf.read_text()), overrides)
    for config in (saved, current):
        for dotted in run_specific:
            *sections, key = dotted.split(".")
            node = config
            for section in sections:
                node = node.get(section) or {}
            node.pop(key, None)
    differing = sorted(section for section in set(saved) | set(current)
                       if section != "data" and saved.get(section) != current.get(section))
    if differing:
        raise ValueError(f"{saved_path} differs from {conf.relative_to(REPO)} in {differing}: "
                         "re-run the demo with the current config")


def check_demo(demo: DemoSpread, log_dir: Path) -> dict:
    """One result per demo: each metric of the run in `log_dir` against the recorded spread."""
    result = {"figure": f"demo {demo.name}", "group": "demo", "log_dir": str(log_dir), "metrics": {}}
    try:
        path = latest_metrics(log_dir)
        if demo.config:
            check_demo_config(path.parent, REPO / demo.config, demo.overrides, demo.run_specific)
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        result["status"] = f"error: {error} (run `{demo.command}`)"
        return result
    statuses = []
    for name, spread in demo.metrics.items():
        value = metrics.get(name)
        if value is None:
            status = "not in the run's metrics"
        elif spread is None:
            status = "no spread recorded"
        else:
            low, high = spread["min"] - demo.tolerance, spread["max"] + demo.tolerance
            status = "ok" if low <= value <= high else f"outside [{low:.4f}, {high:.4f}]"
        result["metrics"][name] = {"value": value, "spread": spread, "status": status}
        statuses.append(status)
    result["status"] = "ok" if statuses and all(s == "ok" for s in statuses) else next(
        (s for s in statuses if s != "ok"), "no metrics listed")
    return result


FIGURES = [
    Figure("demo CRNN parameters (baseline page)", "parameters", "docs/dcase2022_baseline.md",
           r"a narrow CRNN \((\d[\d,]*) parameters\)", lambda s: [f"{s.parameters(DEMO_CONF):,}"]),
    Figure("demo CRNN parameters (throughput)", "parameters", "benchmarks/RESULTS.md",
           r"demo CRNN \(`demo\.yaml`, (\d[\d,]*) parameters", lambda s: [f"{s.parameters(DEMO_CONF):,}"]),
    Figure("baseline CRNN parameters (throughput)", "parameters", "benchmarks/RESULTS.md",
           r"\(`default\.yaml`, (\d[\d,]*) parameters", lambda s: [f"{s.parameters(DEFAULT_CONF):,}"]),
    Figure("baseline student detections: CLI figures", "anchors", "docs/evaluation.md",
           r"the CLI gives event F1\s+(\d[\d,]*(?:\.\d+)?) % micro / (\d[\d,]*(?:\.\d+)?) % macro, segment\s+F1 (\d[\d,]*(?:\.\d+)?) % micro / (\d[\d,]*(?:\.\d+)?) % macro, intersection F1 (\d[\d,]*(?:\.\d+)?), "
           r"and from\s+its 50 operating points PSDS1 (\d[\d,]*(?:\.\d+)?), PSDS2 (\d[\d,]*(?:\.\d+)?)",
           lambda s: [*(percent(s.evaluation("detections")[k]) for k in (
               "event_f1_micro", "event_f1_macro", "segment_f1_micro", "segment_f1_macro")),
               four(s.evaluation("detections")["intersection_f1_macro"]),
               four(s.evaluation("operating_points")["psds1_psds_eval"]),
               four(s.evaluation("operating_points")["psds2_psds_eval"])]),
    Figure("baseline student detections: legacy event F1", "anchors", "docs/evaluation.md",
           r"With `--float_precision legacy` [^.]*\) the event F1 is (\d[\d,]*(?:\.\d+)?) % micro / (\d[\d,]*(?:\.\d+)?) % macro",
           lambda s: [percent(s.evaluation("legacy_detections")[k]) for k in ("event_f1_micro", "event_f1_macro")]),
    Figure("baseline student detections: results row", "anchors", "docs/dcase2022_baseline.md",
           r"\| official baseline student's real detections, [^|]*\| DESED validation \(1,168 clips\) \| "
           r"(\d[\d,]*(?:\.\d+)?) \| (\d[\d,]*(?:\.\d+)?) \| (\d[\d,]*(?:\.\d+)?) % \| (\d[\d,]*(?:\.\d+)?) % \|",
           lambda s: [four(s.evaluation("operating_points")["psds1_psds_eval"]),
                      four(s.evaluation("operating_points")["psds2_psds_eval"]),
                      percent(s.evaluation("detections")["intersection_f1_macro"]),
                      percent(s.evaluation("legacy_detections")["event_f1_macro"])]),
]


def has_metrics(log_dir: Path) -> bool:
    try:
        return latest_metrics(log_dir).is_file()
    except FileNotFoundError:
        return False


def find(figure: Figure, text: str) -> list[re.Match]:
    """Every match of the figure's pattern in its document's text."""
    return list(re.finditer(figure.pattern, text, re.MULTILINE))


def check(root: Path, sources: Sources, skip: set[str]) -> list[dict]:
    """One result per text figure of the documents under `root`."""
    results = []
    for figure in FIGURES:
        if figure.group in skip:
            continue
        document = root / figure.document
        matches = find(figure, document.read_text()) if document.is_file() else []
        result = {"figure": figure.name, "group": figure.group, "document": figure.document,
                  "stated": [m.groups() for m in matches]}
        try:
            computed = figure.compute(sources)
        except Exception as error:  # one failing source must not hide the other figures
            result.update(computed=None, status=f"error: {error}")
            results.append(result)
            continue
        result["computed"] = computed
        if not matches:
            result["status"] = f"not found in {figure.document}"
        elif all(list(m.groups()) == computed for m in matches):
            result["status"] = "ok"
        else:
            result["status"] = "differs"
        results.append(result)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(REPO), help="folder holding README.md, docs/ and benchmarks/RESULTS.md")
    parser.add_argument("--spread", default=str(REPO / "benchmarks" / "demo_spread.json"),
                        help="the recorded spread of every demo's metrics")
    parser.add_argument("--demo_log_dir", default=None, help="log directory of a `make demo` run (the baseline demo)")
    parser.add_argument("--log_dir", nargs="*", default=[], metavar="DEMO=DIR",
                        help="log directory of a demo run, by its name in the spread file")
    parser.add_argument("--run", action="store_true", help="run the command of each demo whose run is absent")
    parser.add_argument("--anchors", default=str(REPO.parent / "shared" / "anchors"),
                        help="the reference files (anchors group skipped when absent)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("parameters", "anchors", "demo"))
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    skip = set(args.skip)
    if "anchors" not in skip and not (Path(args.anchors) / "desed").is_dir():
        print(f"anchors group skipped: {args.anchors}/desed not found", file=sys.stderr)
        skip.add("anchors")
    results = check(Path(args.root), Sources(Path(args.anchors)), skip)
    if "demo" not in skip:
        demos = {demo.name: demo for demo in DemoSpread.load_all(Path(args.spread))}
        chosen = dict(item.split("=", 1) for item in args.log_dir)
        if args.demo_log_dir:
            chosen["dcase2022_baseline"] = args.demo_log_dir
        unknown = sorted(set(chosen) - set(demos))
        if unknown:
            parser.error(f"--log_dir: no demo {unknown} in {args.spread}; demos: {sorted(demos)}")
        for name in chosen or demos:
            log_dir = Path(chosen.get(name, demos[name].log_dir))
            log_dir = log_dir if log_dir.is_absolute() else REPO / log_dir
            if args.run and not has_metrics(log_dir):
                print(f"running {demos[name].command}", file=sys.stderr)
                subprocess.run(shlex.split(demos[name].command), cwd=REPO, check=True)
            results.append(check_demo(demos[name], log_dir))
    width = max(len(r["figure"]) for r in results)
    for result in results:
        if result["group"] == "demo":
            shown = "; ".join(f"{name} {m['value']}" for name, m in result["metrics"].items()) or "-"
            print(f"{result['figure']:<{width}}  {result['status']:<22}  {shown}")
            continue
        stated = "; ".join(", ".join(groups) for groups in result["stated"]) or "-"
        computed = ", ".join(result["computed"] or []) or "-"
        print(f"{result['figure']:<{width}}  {result['status']:<22}  stated: {stated}  computed: {computed}")
    summary = {"root": args.root, "skipped": sorted(skip), "figures": results}
    print(json.dumps(summary, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2))
    return int(any(r["status"] != "ok" for r in results))


if __name__ == "__main__":
    sys.exit(main())
