"""Scoring and reporting of the SED tasks' collected validation and test outputs.

Frame outputs -> post-processed score tables (`decode_scores`), restricted to the evaluated clips and to
the classes present in their ground truth; the test report (PSDS with both tools, F1s, per-clip score
files, PSD-ROC plots, `test_metrics.json`) and the evaluation-set score files. Called on rank 0 by
`desed_task.training.sed.SEDTask` and its subclasses.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from sed_scores_eval.base_modules.io import write_sed_scores
from torch import Tensor, nn
from torch.utils.data import Dataset

from desed_task.data.encoder import ManyHotEncoder
from desed_task.evaluation import (decode_strong_scores, intersection_f1_macro, load_durations, load_ground_truth,
                                   save_psd_roc_plot, scores_to_detections, sed_report, weak_f1)
from desed_task.postprocess.params import save_params
from desed_task.postprocess.report import postprocessed_metrics
from desed_task.postprocess.tune import tune, tuning_request
from desed_task.training.distributed import broadcast_from_rank0, gather_clips
from desed_task.utils.errors import BadInput
from desed_task.utils.files import write_json

log = logging.getLogger(__name__)

MODELS = ("student", "teacher")


def psds_thresholds(n_thresholds: int) -> np.ndarray:
    """The baseline's PSDS operating points: 1/(2n), 3/(2n), ..., (2n-1)/(2n)."""
    return np.arange(1 / (n_thresholds * 2), 1, 1 / n_thresholds)


def decode_scores(strong: list[Tensor], file_ids: list[str], encoder: ManyHotEncoder, median_window,
                  durations: dict | None):
    """Per-clip frame outputs (C, T) -> (raw, post-processed) score tables {audio id: DataFrame}."""
    return decode_strong_scores(torch.stack(strong).numpy(), list(file_ids), encoder, median_window,
                                durations=durations)


def restrict_to_clips(ground_truth: pd.DataFrame, durations: dict, file_ids: Sequence[str]):
    """Ground truth and durations of the evaluated clips only (limited batches, DDP shards)."""
    ids = set(file_ids)
    return ground_truth[ground_truth["filename"].isin(ids)], {k: v for k, v in durations.items() if k in ids}


def present_classes(scores: dict[str, pd.DataFrame], ground_truth: pd.DataFrame, labels: Sequence[str]) -> dict:
    """Score tables without the classes that have no ground-truth event in the evaluated clips.

    sed_scores_eval cannot compute a PSDS for such classes; this only happens on tiny or truncated
    test sets (`--fast_dev_run`), where the metrics are then over the present classes.
    """
    absent = [label for label in labels if label not in set(ground_truth["event_label"])]
    if not absent:
        return scores
    log.warning("no ground-truth event of %s in the test clips: metrics are over the other classes", absent)
    return {clip: frame.drop(columns=absent) for clip, frame in scores.items()}


def write_scores(scores: dict[str, pd.DataFrame], folder: Path) -> None:
    """One sed_scores_eval score TSV per clip: `<folder>/<audio id>.tsv`."""
    folder.mkdir(parents=True, exist_ok=True)
    write_sed_scores(scores, folder)


def plot_psd_roc(curves: dict, folder: Path) -> None:
    """PSD-ROC plots of every PSDS curve into `folder`; a failed plot is logged, never fatal."""
    for name, result in curves.items():
        try:
            save_psd_roc_plot(result, folder, prefix=name)
        except Exception as error:  # a plot must not lose the metrics of a run
            log.warning("PSD-ROC plot %s in %s failed: %s", name, folder, error)


def write_eval_scores(outputs: dict, encoder: ManyHotEncoder, median_window, durations: dict | None,
                      log_dir: Path) -> None:
    """Evaluation set: per-clip post-processed score files `<log_dir>/eval_scores/<model>/<clip>.tsv`."""
    for model in MODELS:
        _, scores = decode_scores(outputs[f"{model}_strong"], outputs["file_id"], encoder, median_window, durations)
        write_scores(scores, log_dir / "eval_scores" / model)
    log.info("evaluation scores written to %s", log_dir / "eval_scores")


def tune_postprocessing(validation_scores: dict, request: dict, log_dir: Path) -> dict[str, Path]:
    """Per model, the post-processing `request` (`tuning_request`) tuned on its raw validation score tables
    (`validation_scores`: per model, plus their `ground_truth` and `durations`),
    saved as `<log_dir>/postprocess_<model>.yaml` (the tables too, in `validation_scores_raw/<model>/`, to tune
    other methods on with `python -m desed_task.postprocess tune`); returns the parameter files."""
    paths = {}
    for model in MODELS:
        write_scores(validation_scores[model], log_dir / "validation_scores_raw" / model)
        params = tune(request["method"], validation_scores[model], validation_scores["ground_truth"],
                      validation_scores["durations"], request["objective"])
        paths[model] = save_params(params, log_dir / f"postprocess_{model}.yaml")
        log.info("%s post-processing tuned on %d validation clips (%s %.4f): %s", model,
                 params.tuning["clips"], request["objective"], params.tuning["value"], paths[model])
    return paths


def report_test_metrics(outputs: dict, encoder: ManyHotEncoder, config: dict, log_dir: Path,
                        postprocess: dict[str, Path] | None = None) -> dict[str, float]:
    """PSDS (both tools), F1s for student and teacher on all test clips; writes score files and PSD-ROC plots;
    returns the metrics. `postprocess`: per model, a parameter file for the `_postprocessed` metrics
    (default: `training.postprocess` for both)."""
    data, training = config["data"], config["training"]
    postprocess = postprocess or {model: training.get("postprocess") for model in MODELS}
    ground_truth, durations = restrict_to_clips(
        load_ground_truth(data["test_tsv"]), load_durations(data["test_dur"]), outputs["file_id"])
    thresholds = psds_thresholds(int(training["n_test_thresholds"]))
    targets = torch.stack(outputs["target"]).numpy()
    results: dict[str, float] = {}
    for model in MODELS:
        raw, scores = decode_scores(outputs[f"{model}_strong"], outputs["file_id"], encoder,
                                    training["median_window"], durations)
        write_scores(scores, log_dir / "test_scores" / model)
        write_scores(raw, log_dir / "test_scores_raw" / model)  # to tune post-processing on
        scores = present_classes(scores, ground_truth, encoder.labels)
        curves: dict = {}
        with warnings.catch_warnings():  # psds_eval warns for every duplicate operating point
            warnings.simplefilter("ignore", UserWarning)
            report = sed_report(ground_truth, durations, scores=scores,
                                operating_points=scores_to_detections(scores, thresholds), curves=curves)
        for name, value in report.items():
            if isinstance(value, (int, float)) and name != "threshold":
                results[f"test/{model}/{name}"] = float(value)
        results.update(postprocessed_metrics(raw, ground_truth, durations, postprocess[model],
                                             f"test/{model}", plain=results))
        plot_psd_roc(curves, log_dir / "psd_roc" / model)
        macro, per_class = weak_f1(torch.stack(outputs[f"{model}_weak"]).numpy(), targets, encoder.labels,
                                   threshold=0.5)
        results[f"test/{model}/weak_f1_macro"] = float(macro)
        results[f"test/{model}/loss_strong"] = float(torch.stack(outputs[f"{model}_loss_strong"]).mean())
        for label, value in per_class.items():
            results[f"test/{model}/weak_f1_classwise:{label}"] = float(value)
    results["hp_metric"] = max(results["test/student/psds1_psds_eval"], results["test/student/psds2_psds_eval"])
    return results


class SEDEvaluation:
    """Validation, test and evaluation steps of the SED task (a LightningModule mixin of `SEDTask`).

    Per-batch outputs are buffered, gathered from every rank in file-id order, scored on rank 0 and the
    metrics sent to every rank. Uses the task's `config`, `encoder`, `log_dir`, `evaluation`, `test_data`,
    `supervised_loss`, `detect`, `inference_inputs`, `batch_embeddings`, `sed_student`, `sed_teacher` and the state
    `SEDTask.__init__` sets (`_outputs`, `_synth_val_reference`, `_keep_validation_scores`, `test_results`).
    """

    # ------------------------------------------------------------------ buffers shared by validation and test
    def _predict(self, batch) -> dict[str, tuple[Tensor, Tensor]]:
        features, embeddings = self.inference_inputs(batch[0]), self.batch_embeddings(batch)
        return {"student": self.detect(features, self.sed_student, embeddings),
                "teacher": self.detect(features, self.sed_teacher, embeddings)}

    def _buffer(self, name: str, **values) -> None:
        """Keep per-batch values (moved to CPU) until the end of the epoch."""
        store = self._outputs.setdefault(name, [])
        store.append({key: value.detach().float().cpu() if torch.is_tensor(value) else value
                      for key, value in values.items()})

    def _collect(self, name: str) -> dict[str, list]:
        """All buffered values of `name` from every rank, one entry per clip, in file-id order (`gather_clips`)."""
        return gather_clips(self._outputs.pop(name, []))

    def _decode(self, strong: list[Tensor], file_ids: list[str], durations: dict | None):
        return decode_scores(strong, file_ids, self.encoder, self.config["training"]["median_window"], durations)

    def synth_val_reference(self) -> tuple[pd.DataFrame, dict]:
        """Ground truth and durations of the synthetic validation set (read once per run)."""
        if self._synth_val_reference is None:
            data = self.config["data"]
            self._synth_val_reference = (load_ground_truth(data["synth_val_tsv"]),
                                         load_durations(data["synth_val_dur"]))
        return self._synth_val_reference

    # ------------------------------------------------------------------ validation
    def validation_sets(self) -> dict[str, tuple[Dataset, str]]:
        """Hook: the validation sets in loader order, {name: (dataset, "strong" or "weak")}.

        A "strong" set is scored on the frame outputs against the frame labels, a "weak" set on the clip
        outputs against the clip labels: both log `val/<name>/<model>/loss_<kind>` per batch and buffer
        `val_<name>`, whose per-clip values reach `_validation_metrics` as its keyword argument `<name>`.
        Default: the synthetic set `synth` (strong) and the weak split `weak`.
        """
        return {"synth": (self.valid_synth, "strong"), "weak": (self.valid_weak, "weak")}

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        audio, labels, _, file_ids = batch[:4]
        name, (_, kind) = list(self.validation_sets().items())[dataloader_idx]
        output, target = (0, labels) if kind == "strong" else (1, labels.amax(-1))
        predictions = self._predict(batch)
        for model, outputs in predictions.items():
            self.log(f"val/{name}/{model}/loss_{kind}", self.supervised_loss(outputs[output], target),
                     batch_size=len(audio), add_dataloader_idx=False, sync_dist=True)
        self._buffer(f"val_{name}", file_id=list(file_ids), student=predictions["student"][output],
                     teacher=predictions["teacher"][output], target=target)

    def on_validation_epoch_end(self) -> None:
        outputs = {name: self._collect(f"val_{name}") for name in self.validation_sets()}
        if self._keep_validation_scores and self.global_rank == 0 and outputs["synth"]:
            self.keep_validation_scores(outputs["synth"])
        results = self._validation_metrics(**outputs) if self.global_rank == 0 else {}
        for name, value in broadcast_from_rank0(results).items():
            self.log(name, value, prog_bar=name == "val/obj_metric", sync_dist=True)  # equal on every rank

    def validate_for_tuning(self, trainer, ckpt_path: str | None) -> None:
        """Validate the weights of `ckpt_path` (None: the current ones) once more, keeping their raw synthetic
        validation scores (`keep_validation_scores`) to tune the post-processing on before testing."""
        self._keep_validation_scores = True
        trainer.validate(self, ckpt_path=ckpt_path, verbose=False)

    def keep_validation_scores(self, synth: dict) -> None:
        """Raw score tables of the synthetic validation set per model, with its ground truth and durations
        (`validation_scores`), to tune the post-processing on before testing (`training.postprocess: {tune:
        ...}`)."""
        ground_truth, durations = restrict_to_clips(*self.synth_val_reference(), synth["file_id"])
        self.validation_scores = {"ground_truth": ground_truth, "durations": durations, **{
            model: self._decode(synth[model], synth["file_id"], durations)[0] for model in MODELS}}

    def _validation_metrics(self, synth: dict, weak: dict) -> dict[str, float]:
        """Hook: the epoch's metrics (computed on rank 0, logged on every rank), which include the checkpoint
        criterion `val/obj_metric`; each argument holds the collected buffers of one of `validation_sets`."""
        training = self.config["training"]
        results = {}
        for model in MODELS:
            results[f"val/weak/{model}/macro_F1"] = float(weak_f1(
                torch.stack(weak[model]).numpy(), torch.stack(weak["target"]).numpy(), self.encoder.labels,
                threshold=0.5)[0]) if weak else 0.0
        if synth:
            ground_truth, durations = restrict_to_clips(*self.synth_val_reference(), synth["file_id"])
            for model in MODELS:
                _, scores = self._decode(synth[model], synth["file_id"], durations)
                detections = scores_to_detections(scores, list(training["val_thresholds"]))
                results[f"val/synth/{model}/intersection_f1_macro"] = float(np.mean([
                    intersection_f1_macro(frame, ground_truth, durations)[0] for frame in detections.values()]))
        synth_type = training.get("obj_metric_synth_type") or "intersection"
        if synth_type != "intersection":
            raise BadInput(f"training.obj_metric_synth_type {synth_type!r} is not supported (use intersection)")
        results["val/obj_metric"] = (results["val/weak/student/macro_F1"]
                                     + results.get("val/synth/student/intersection_f1_macro", 0.0))
        return results

    # ------------------------------------------------------------------ test and evaluation
    def test_step(self, batch, batch_idx):
        audio, labels, valid_frames, file_ids = batch[:4]
        predictions = self._predict(batch)
        values = {"file_id": list(file_ids)}
        for model, (strong, weak) in predictions.items():
            values[f"{model}_strong"] = strong
            values[f"{model}_weak"] = weak
            if not self.evaluation:
                values[f"{model}_loss_strong"] = nn.functional.binary_cross_entropy(
                    strong, labels, reduction="none").mean(dim=(1, 2))
        if not self.evaluation:
            values["target"] = labels.amax(-1)
        self._buffer("test", **values)

    def on_test_epoch_end(self) -> None:
        outputs = self._collect("test")
        results = {}
        if self.global_rank == 0 and outputs:
            results = self._write_eval_scores(outputs) if self.evaluation else self._test_metrics(outputs)
            if results:
                write_json(self.log_dir / "test_metrics.json", results, indent=2, sort_keys=True)
        results = broadcast_from_rank0(results)
        self.test_results = results
        if results and not self.evaluation:
            if self.logger is not None:
                self.logger.log_metrics(results, step=self.global_step)
            for name, value in results.items():
                self.log(name, value, logger=False, sync_dist=True)

    def _write_eval_scores(self, outputs: dict) -> dict:
        """Evaluation set: per-clip post-processed score files (`write_eval_scores`); no metrics."""
        infos = getattr(self.test_data, "audio_info", {})
        max_len = float(self.config["data"]["audio_max_len"])
        durations = {f: min(infos[f].duration, max_len) for f in outputs["file_id"] if f in infos} or None
        write_eval_scores(outputs, self.encoder, self.config["training"]["median_window"], durations, self.log_dir)
        return {}

    def _test_metrics(self, outputs: dict) -> dict[str, float]:
        """Hook: the test metrics of the collected outputs, computed on rank 0 (`report_test_metrics`), with
        the post-processing tuned on the last validation when `training.postprocess` asks for tuning."""
        request = tuning_request(self.config["training"].get("postprocess"))
        postprocess = None
        if request is not None:
            if self.validation_scores is None:
                raise BadInput("training.postprocess asks to tune on the synthetic validation set, which was "
                               "not scored before testing")
            postprocess = tune_postprocessing(self.validation_scores, request, self.log_dir)
        return report_test_metrics(outputs, self.encoder, self.config, self.log_dir, postprocess)
