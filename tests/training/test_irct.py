"""IRCTTask at the trainer level: three-view batches, loss_i zero/positive, gradients, config, score records."""
from pathlib import Path

import pytest
import torch

from desed_task.features.irct_augment import VIEWS, Augmentation, AugmentInfo, IRCTViews, PartPlan
from desed_task.training.irct import IRCTTask, irct_settings
from desed_task.training.run import paper_metric_names, record_scores
from desed_task.utils.config import load_config
from desed_task.utils.scores import read_score_blocks

REPO = Path(__file__).resolve().parents[2]
BATCH_SIZES = [2, 2, 4]
SAMPLES = 16000  # 1 s clips: 63 log-mel frames, 15 label frames


def make_task(placement="l3", **irct):
    overrides = [f"irct.placement={placement}", "training.batch_size=[2,2,4]", "net.nb_filters=[4,8,8,8,8,8,8]",
                 "net.n_RNN_cell=8", *(f"irct.{key}={value}" for key, value in irct.items())]
    torch.manual_seed(0)
    return IRCTTask(load_config(REPO / "confs/irct/irct_t1_l3_1.yaml", overrides))


def raw_batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(sum(BATCH_SIZES), SAMPLES, generator=generator)
    starts = torch.randint(0, SAMPLES // 2, (sum(BATCH_SIZES), 1), generator=generator)
    audio = audio * ((torch.arange(SAMPLES) >= starts) & (torch.arange(SAMPLES) < starts + SAMPLES // 4))  # bursts
    labels = (torch.rand(sum(BATCH_SIZES), 10, 15, generator=generator) > 0.7).float()
    labels[4:] = 0
    return audio, labels, torch.ones(sum(BATCH_SIZES), 15, dtype=torch.bool), [f"clip{i}.wav" for i in range(8)]


def student_loss_i(task, batch):
    """(weighted extra loss, logs) of one training batch through the hooks, as training_step calls them."""
    student = task.student_forward(batch)
    with torch.no_grad():
        teacher = task.detect(batch.features, task.sed_teacher)
    return task.compute_extra_loss(batch, student, teacher)


def identical_views_batch(task, raw):
    """A prepared batch whose three views are the original clips, with no mixup partner and an
    invariance-type augmentation: every IRCT term compares e(x) with itself."""
    batch = task.prepare_train_batch(raw)
    original = batch.views.features["original"]
    parts = [PartPlan(p.name, p.rows, p.ratio, [], AugmentInfo(Augmentation("freq_mask", 1)))
             for p in batch.views.parts]
    batch.views = IRCTViews({view: original for view in VIEWS}, batch.views.labels, parts)
    batch.features = original
    return batch


@pytest.mark.parametrize("placement", ["input", "l3", "l8", "l9"])
def test_loss_i_is_zero_for_identical_views_and_positive_for_real_views(placement):
    task = make_task(placement)
    task.eval()  # no dropout: identical inputs give identical representations
    zero, logs = student_loss_i(task, identical_views_batch(task, raw_batch()))
    assert zero.item() == 0 and logs["student/loss_i"].item() == 0
    positive, logs = student_loss_i(task, task.prepare_train_batch(raw_batch()))
    assert positive.item() > 0
    assert logs["student/loss_i"].item() == pytest.approx(logs["student/loss_mixup"].item()
                                                          + logs["student/loss_augment"].item())
    assert positive.item() == pytest.approx(logs["student/loss_i"].item() * task.consistency_weight())


def test_supervised_view_feeds_the_student_forward_and_labels():
    task = make_task("l3", supervised_view="mixup")
    batch = task.prepare_train_batch(raw_batch())
    assert batch.supervised_view == "mixup"
    assert batch.features is batch.views.features["mixup"]
    assert torch.equal(batch.labels, batch.views.labels["mixup"])
    assert torch.equal(batch.weak_labels, batch.labels[batch.weak_mask].amax(-1))
    task.eval()
    strong, weak = task.student_forward(batch)
    expected = task.sed_student(task.scaler(batch.views.features["mixup"]))
    assert torch.allclose(strong, expected[0]) and torch.allclose(weak, expected[1])


def test_random_supervised_view_visits_every_view():
    task = make_task("l3")
    assert {task.prepare_train_batch(raw_batch(seed)).supervised_view for seed in range(12)} == set(VIEWS)


@pytest.mark.parametrize("placement, trained_blocks", [("l1", 1), ("l3", 3), ("l8", 7)])
def test_loss_i_sends_gradients_only_into_the_encoder_up_to_the_placement(placement, trained_blocks):
    task = make_task(placement)
    task.train()
    extra, _ = student_loss_i(task, task.prepare_train_batch(raw_batch()))
    extra.backward()
    model = task.sed_student
    for block in range(7):
        grad = getattr(model.cnn.cnn, f"conv{block}").weight.grad
        if block < trained_blocks:
            assert grad is not None and grad.abs().sum() > 0, f"conv{block}"
        else:
            assert grad is None or grad.abs().sum() == 0, f"conv{block}"
    rnn_grad = model.rnn.rnn.weight_ih_l0.grad
    assert (rnn_grad is not None and rnn_grad.abs().sum() > 0) == (placement == "l8")
    assert model.dense.weight.grad is None or model.dense.weight.grad.abs().sum() == 0


def test_teacher_and_validation_use_the_plain_forward():
    task = make_task("l3")
    task.eval()
    batch = task.prepare_train_batch(raw_batch())
    teacher = task.detect(batch.features, task.sed_teacher)
    assert batch.representations is None  # only the student's training forward encodes the views
    assert torch.allclose(teacher[0], task.sed_teacher(task.scaler(batch.features))[0])
    other = batch.features.clone()
    assert torch.allclose(task.detect(other, task.sed_student)[0], task.sed_student(task.scaler(other))[0])


def test_time_shift_term_rolls_for_real_unless_roll_bug_compatible():
    """At the input placement e(x) is the scaled log-mel, exactly equivariant to a roll of whole frames."""
    losses = {}
    for bug in (False, True):
        task = make_task("input", roll_bug_compatible=bug)
        task.eval()
        batch = identical_views_batch(task, raw_batch())
        shift = AugmentInfo(Augmentation("time_shift", 2, shift_fraction=0.2), shift_input_frames=12)
        batch.views.parts = [PartPlan(p.name, p.rows, p.ratio, [], shift) for p in batch.views.parts]
        batch.views.features = {**batch.views.features,
                                "augmented": torch.roll(batch.views.features["original"], 12, dims=-1)}
        losses[bug] = student_loss_i(task, batch)[1]["student/loss_augment"].item()
    assert losses[False] == 0 and losses[True] > 0


def test_augment_invariance_switch_drops_the_non_shift_term_as_the_reference():
    logs = {}
    for switch in (True, False):
        task = make_task("l3", augment_invariance=switch)
        task.eval()
        batch = task.prepare_train_batch(raw_batch())
        invariance = AugmentInfo(Augmentation("freq_mask", 3))
        batch.views.parts = [PartPlan(p.name, p.rows, p.ratio, p.partners, invariance) for p in batch.views.parts]
        logs[switch] = student_loss_i(task, batch)[1]
    assert logs[True]["student/loss_augment"].item() > 0 and logs[False]["student/loss_augment"].item() == 0
    assert logs[False]["student/loss_i"].item() == pytest.approx(logs[False]["student/loss_mixup"].item())


def test_settings_defaults_and_validation():
    config = load_config(REPO / "confs/irct/irct_t2_l8_3.yaml")
    settings = irct_settings(config)
    assert settings["placement"] == "l8" and settings["aug_set"] == "tau2" and settings["cost_i"] == 0.1
    minimal = {"training": {"seed": 7}, "irct": {"placement": "l2", "aug_set": "tau1"}}
    assert irct_settings(minimal)["seed"] == 7 and irct_settings(minimal)["supervised_view"] == "random"
    with pytest.raises(ValueError, match="aug_set"):
        irct_settings({"training": {}, "irct": {"placement": "l2", "aug_set": "tau3"}})
    with pytest.raises(ValueError, match="irct"):
        irct_settings({"training": {}})
    with pytest.raises(ValueError, match="placement"):
        make_task("l10")


def test_generator_state_round_trips_through_the_checkpoint():
    task = make_task("l3")
    checkpoint = {}
    task.on_save_checkpoint(checkpoint)
    first = task.prepare_train_batch(raw_batch()).views.parts[0].partners
    task.on_load_checkpoint(checkpoint)
    again = task.prepare_train_batch(raw_batch()).views.parts[0].partners
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_record_scores_uses_paper_names_run_name_and_energy(tmp_path):
    log_dir = tmp_path / "exp" / "some_dir"
    (log_dir / "devtest_codecarbon").mkdir(parents=True)
    (log_dir / "devtest_codecarbon" / "devtest_tot_kwh.txt").write_text("0.5")
    (log_dir / "config.yaml").write_text("run_name: irct_t1_l3_1\n")
    results = {"test/student/psds2_sed_scores_eval": 0.25, "test/teacher/weak_f1_classwise:Cat": 0.5}
    assert paper_metric_names(results) == {"test/student/psds2_sed_scores_eval": 0.25,
                                           "test/teacher/weak_f1:Cat": 0.5}
    scores = tmp_path / "misc" / "scores.txt"
    assert record_scores(scores, log_dir, results) == "irct_t1_l3_1"
    block = read_score_blocks(scores)["irct_t1_l3_1"]
    assert block == {"test/student/psds2_sed_scores_eval": 0.25, "test/teacher/weak_f1:Cat": 0.5,
                     "/test/tot_energy_kWh": 0.5}
    (log_dir / "config.yaml").unlink()
    assert record_scores(scores, log_dir, results) == "some_dir"


def test_original_view_reuses_the_batch_log_mel():
    task = make_task("l3")
    raw = raw_batch()
    batch = task.prepare_train_batch(raw)
    assert torch.allclose(batch.views.features["original"], task.mel(raw[0]))
