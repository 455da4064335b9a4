"""Two-process DDP training on CPU (gloo) of the baseline and IRCT recipes, on a mini DESED whose validation
and test sets have an odd number of clips (so DistributedSampler pads one rank with a repeated clip).

`ddp_worker.py` records on every rank what the rank trained, validated and tested on. The baseline runs once
through Lightning's own launcher (`--accelerator cpu --devices 2`); then one torchrun resumes it for a second
epoch and runs IRCT.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from desed_task.data.build import build_sed_datasets
from desed_task.data.mini import ensure_mini_dataset
from desed_task.data.mini import resolve_config
from desed_task.training.run import main
from desed_task.training.sed import SEDTask, build_encoder, load_sed_checkpoint
from desed_task.utils.scores import read_score_blocks

REPO = Path(__file__).resolve().parents[2]
WORKER = str(Path(__file__).with_name("ddp_worker.py"))
SED_CONF = str(REPO / "confs/dcase2022_task4_baseline/demo.yaml")
IRCT_CONF = str(REPO / "confs/irct/irct_t2_l3_1.yaml")
# 30 weak clips: 27 train (odd: one left out per epoch) and 3 validation; 15 validation and 15 test clips.
SIZES = {"n_synth": 16, "n_weak": 30, "n_unlabeled": 16, "n_synth_val": 15, "n_test": 15}
# demo.yaml's cheaper features for the IRCT config (64 mels, hop 512, no frequency pooling in the last block)
DEMO_FEATURES = ["feats.n_mels=64", "feats.hop_length=512", "net.pooling=[[2,2],[2,2],[1,2],[1,2],[1,2],[1,2],[1,1]]"]
BATCH = [2, 2, 2]  # per rank: 8 synthetic, 13 weak, 8 unlabeled clips -> 4 steps per epoch


@pytest.fixture(scope="module")
def ddp_mini() -> Path:
    root = Path(tempfile.gettempdir()) / "desed_task_tests" / "mini_desed_ddp"
    ensure_mini_dataset(root, seed=0, **SIZES)
    return root


@pytest.fixture(scope="module")
def overrides(ddp_mini) -> list[str]:
    mini = "{" + f"out_dir: {ddp_mini}, seed: 0, " + ", ".join(f"{k}: {v}" for k, v in SIZES.items()) + "}"
    return [f"data.mini={mini}", f"training.batch_size={BATCH}", "training.batch_size_val=4",
            "training.num_workers=0", "training.n_epochs=1", "training.n_epochs_warmup=1",
            "training.validation_interval=1", "training.n_test_thresholds=10", "training.enable_progress_bar=False",
            "net.nb_filters=[4,8,8,8,8,8,8]", "net.n_RNN_cell=8"]


def worker_args(recipe: str, conf: str, log_dir: Path, overrides, *flags) -> list[str]:
    return [recipe, "--conf_file", conf, "--log_dir", str(log_dir), "--accelerator", "cpu", "--devices", "2",
            "--scores_file", str(log_dir / "scores.txt"), *flags, "--set", *overrides]


def launch(launcher: str, *runs: list[str]) -> None:
    """Run `ddp_worker.py` with 2 CPU processes, started by Lightning ('lightning') or by torchrun, which can
    run several recipes (`worker_args`) one after the other."""
    args = [WORKER, *runs[0]]
    for more in runs[1:]:
        args += ["--then", *more]
    if launcher == "torchrun":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    else:
        command = [sys.executable, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]


def records(log_dir: Path, stage: str) -> list[dict]:
    ranks = [json.loads((log_dir / "ranks" / f"rank{r}_{stage}.json").read_text()) for r in range(2)]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    return ranks


def writes(log_dir: Path) -> list[tuple[str, str, str]]:
    return [tuple(line.split("\t")) for line in (log_dir / "ranks/writes.tsv").read_text().splitlines()]


def split_by_set(file_ids: list[str]) -> list[list[str]]:
    """The clips of `[synthetic | weak | unlabeled]` batches of sizes BATCH, per set."""
    size = sum(BATCH)
    bounds = [0, BATCH[0], BATCH[0] + BATCH[1], size]
    return [[f for i, f in enumerate(file_ids) if bounds[s] <= i % size < bounds[s + 1]] for s in range(3)]


@pytest.fixture(scope="module")
def sed_run(tmp_path_factory, overrides):
    log_dir = tmp_path_factory.mktemp("sed_ddp")
    launch("lightning", worker_args("sed", SED_CONF, log_dir, overrides))
    return log_dir


@pytest.fixture(scope="module")
def torchrun_runs(tmp_path_factory, overrides, sed_run):
    """Through one torchrun: the baseline run resumed for a second epoch, then an IRCT run (dataset scaler)."""
    resumed, irct = tmp_path_factory.mktemp("sed_ddp_resumed"), tmp_path_factory.mktemp("irct_ddp")
    launch("torchrun",
           worker_args("sed", SED_CONF, resumed, [*overrides, "training.n_epochs=2"],
                       "--resume_from_checkpoint", str(sed_run / "last.ckpt")),
           worker_args("irct", IRCT_CONF, irct,
                       [*overrides, *DEMO_FEATURES, "irct.aug_set=tau2", "run_name=irct_ddp",
                        "scaler.statistic=dataset", "scaler.normtype=standard",
                        f"scaler.savepath={irct / 'scaler.ckpt'}"]))
    return {"sed_resumed": resumed, "irct": irct}


@pytest.fixture(scope="module")
def sed_resumed(torchrun_runs):
    return torchrun_runs["sed_resumed"]


@pytest.fixture(scope="module")
def irct_run(torchrun_runs):
    return torchrun_runs["irct"]


def check_epoch_shards(ranks: list[dict], epoch: str, ddp_mini: Path) -> None:
    """Disjoint, equally long shards; every clip of the synthetic and unlabeled sets seen once in the epoch."""
    per_rank = [split_by_set(r["train_ids"][epoch]) for r in ranks]
    assert len(ranks[0]["train_ids"][epoch]) == len(ranks[1]["train_ids"][epoch]) == 4 * sum(BATCH)
    folders = {0: "train/synthetic21_train/soundscapes_16k", 2: "train/unlabel_in_domain_16k"}
    for index in range(3):
        first, second = per_rank[0][index], per_rank[1][index]
        assert len(set(first)) == len(first) == len(set(second)) == len(second) == 4 * BATCH[index]
        assert not set(first) & set(second)
        if index in folders:
            assert set(first) | set(second) == {p.name for p in (ddp_mini / "audio" / folders[index]).glob("*.wav")}


def check_metrics_once(ranks: list[dict], stage_sets: dict[str, int]) -> None:
    """Metrics computed on rank 0 only, over every clip once; rank 1 padded its last batch with a repeat."""
    for name, n_clips in stage_sets.items():
        local = [r["local_ids"][name] for r in ranks]
        assert len(local[0]) == len(local[1]) == (n_clips + 1) // 2  # DistributedSampler pads to equal shares
        assert len(set(local[0]) | set(local[1])) == n_clips
        for rank in ranks:  # every rank gathers the same deduplicated list
            assert all(len(ids) == len(set(ids)) == n_clips for ids in rank["collected_ids"][name])
    assert ranks[0]["metric_calls"] and not ranks[1]["metric_calls"]


@pytest.mark.slow  # a 2-process launch (~40 CPU-seconds); run by .ci/run
def test_sed_ddp_shards_metrics_once_and_rank0_writes(sed_run, ddp_mini):
    fit, test = records(sed_run, "fit"), records(sed_run, "test")
    check_epoch_shards(fit, "0", ddp_mini)
    check_metrics_once(fit, {"val_synth": SIZES["n_synth_val"], "val_weak": 3})
    check_metrics_once(test, {"test": SIZES["n_test"]})
    checkpoints = sorted(p.name for p in sed_run.glob("*.ckpt"))
    assert checkpoints == ["epoch=0-step=4.ckpt", "last.ckpt"]
    assert {(rank, kind) for rank, kind, _ in writes(sed_run)} == {("0", "checkpoint"), ("0", "scores")}
    assert sorted(name for _, kind, name in writes(sed_run) if kind == "checkpoint") == checkpoints
    metrics = json.loads((sed_run / "test_metrics.json").read_text())
    assert list(read_score_blocks(sed_run / "scores.txt")) == [sed_run.name]
    assert metrics == pytest.approx(test[0]["metric_calls"][0]["test"], nan_ok=True)
    assert len(list((sed_run / "test_scores/teacher").glob("*.tsv"))) == SIZES["n_test"]


@pytest.mark.slow  # a 2-process launch (~40 CPU-seconds); run by .ci/run
def test_sed_ddp_teacher_and_mixup_consistent_across_ranks(sed_run):
    fit = records(sed_run, "fit")
    weights = [torch.load(sed_run / "ranks" / f"rank{r}_fit.pt") for r in range(2)]
    assert weights[0].keys() == weights[1].keys()
    for key, value in weights[0].items():  # parameters and batch-norm statistics of student and teacher
        assert torch.equal(value, weights[1][key]), key
    assert any(not torch.equal(weights[0][k], weights[0][k.replace("teacher", "student")])
               for k in weights[0] if k.startswith("sed_teacher."))
    decisions = [r["mixup"] for r in fit]
    assert decisions[0] == decisions[1] and len(set(decisions[0])) == 2  # mixed and unmixed steps, on both ranks
    permutations = [r["mixup_permutations"] for r in fit]
    assert len(permutations[0]) == len(permutations[1]) > 0
    for rank, drawn in enumerate(permutations):  # every rank draws all ranks' partners, and uses its own
        assert [p["drawn"] for p in drawn] == [p["drawn"] for p in permutations[0]]
        assert all(p["used"] == p["drawn"][rank] for p in drawn)


@pytest.mark.slow  # a 2-process launch (~40 CPU-seconds); run by .ci/run
def test_sed_ddp_metrics_equal_single_process_scoring(sed_run, overrides, tmp_path):
    """Validation and test metrics of the 2-process run = one process scoring the same checkpoints."""
    fit = records(sed_run, "fit")
    validated = fit[0]["metric_calls"][0]["validation"]
    config = resolve_config(SED_CONF, overrides)
    encoder = build_encoder(config)
    datasets = build_sed_datasets(config, encoder)

    class Single(SEDTask):
        def _validation_metrics(self, synth, weak):
            self.validated = super()._validation_metrics(synth, weak)
            return self.validated

    task = Single(config, encoder, valid_synth=datasets.valid_synth, valid_weak=datasets.valid_weak, log_dir=tmp_path)
    load_sed_checkpoint(task, sed_run / "last.ckpt")  # saved right after the epoch's validation
    pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
               enable_model_summary=False).validate(task)
    assert task.validated == validated

    single = main(["--conf_file", SED_CONF, "--log_dir", str(tmp_path / "test"), "--gpus", "0",
                   "--test_from_checkpoint", str(sed_run / "epoch=0-step=4.ckpt"), "--scores_file", "",
                   "--set", *overrides])
    ddp = json.loads((sed_run / "test_metrics.json").read_text())
    assert json.dumps(single, sort_keys=True) == json.dumps(ddp, sort_keys=True)  # exact, NaN-aware


@pytest.mark.slow  # with the IRCT test: one more 2-process launch (~60 CPU-seconds); run by .ci/run
def test_sed_ddp_resume_continues_on_both_ranks(sed_run, sed_resumed, ddp_mini):
    checkpoint = torch.load(sed_run / "last.ckpt", map_location="cpu", weights_only=False)
    steps = checkpoint["global_step"]
    assert steps == 4 and checkpoint["epoch"] == 0
    resumed = records(sed_resumed, "fit")
    for record in resumed:
        start = record["start"]
        assert start["epoch"] == 1 and start["global_step"] == steps and start["adam_steps"] == [steps]
        assert start["batch_generator"] == checkpoint["batch_generator_state"].tolist()[:32]
    assert list(resumed[0]["train_ids"]) == ["1"]
    check_epoch_shards(resumed, "1", ddp_mini)
    first_epoch = records(sed_run, "fit")
    assert resumed[0]["train_ids"]["1"] != first_epoch[0]["train_ids"]["0"]  # a new epoch order
    assert resumed[0]["mixup"] == resumed[1]["mixup"]
    final = torch.load(sed_resumed / "last.ckpt", map_location="cpu", weights_only=False)
    assert final["epoch"] == 1 and final["global_step"] == 2 * steps
    weights = [torch.load(sed_resumed / "ranks" / f"rank{r}_fit.pt") for r in range(2)]
    assert all(torch.equal(value, weights[1][key]) for key, value in weights[0].items())
    assert json.loads((sed_resumed / "test_metrics.json").read_text())
    assert {rank for rank, _, _ in writes(sed_resumed)} == {"0"}


@pytest.mark.slow  # shares the torchrun launch of the resume test; run by .ci/run
def test_irct_ddp_views_shards_and_metrics(irct_run, ddp_mini):
    fit, test = records(irct_run, "fit"), records(irct_run, "test")
    check_epoch_shards(fit, "0", ddp_mini)
    assert fit[0]["views"] == fit[1]["views"] and len(fit[0]["views"]) == 4
    assert fit[0]["augmentations"] == fit[1]["augmentations"]
    weights = [torch.load(irct_run / "ranks" / f"rank{r}_fit.pt") for r in range(2)]
    assert all(torch.equal(value, weights[1][key]) for key, value in weights[0].items())
    saved_scaler = torch.load(irct_run / "scaler.ckpt")  # fitted once, on all the training data, by rank 0
    assert torch.equal(saved_scaler["mean"], weights[1]["scaler.mean"])
    check_metrics_once(fit, {"val_synth": SIZES["n_synth_val"], "val_weak": 3})
    check_metrics_once(test, {"test": SIZES["n_test"]})
    checkpoint = torch.load(irct_run / "last.ckpt", map_location="cpu", weights_only=False)
    assert len(checkpoint["irct_generator_states"]) == 2
    assert not torch.equal(*checkpoint["irct_generator_states"])
    assert {(rank, kind) for rank, kind, _ in writes(irct_run)} == {("0", "checkpoint"), ("0", "scores")}
    assert list(read_score_blocks(irct_run / "scores.txt")) == ["irct_ddp"]
