import sys

import numpy as np
import pandas as pd
import pytest

from desed_task.data.encoder import ManyHotEncoder
from desed_task.evaluation import decode_strong_scores
from desed_task.postprocess import MissingExtra, PostprocessParams, apply_postprocessing, csebbs_grid
from desed_task.postprocess.tune import candidate_scores


def test_median_equals_decode():
    labels = ["Cat", "Dog", "Speech"]
    encoder = ManyHotEncoder(labels, audio_len=10, frame_len=2048, frame_hop=256, net_pooling=4, fs=16000)
    strong = np.random.default_rng(0).random((2, 3, 156))
    windows = [1, 5, 9]
    raw, filtered = decode_strong_scores(strong, ["a.wav", "b.wav"], encoder, windows)
    params = PostprocessParams("median", labels, {c: {"window": w} for c, w in zip(labels, windows)})
    # the tables' column order need not be the params' order
    shuffled = {clip: table[["onset", "offset", "Speech", "Cat", "Dog"]] for clip, table in raw.items()}
    out = apply_postprocessing(shuffled, params)
    for clip in raw:
        pd.testing.assert_frame_equal(out[clip][filtered[clip].columns], filtered[clip])


def test_csebbs_equals_sebbs_predictor(beats):
    csebbs = pytest.importorskip("sebbs.csebbs")
    _, scores, _, _ = beats
    classes = list(next(iter(scores.values())).columns[2:])
    grid = csebbs_grid()
    per_class = {c: grid[(3 * i) % len(grid)] for i, c in enumerate(classes)}
    params = PostprocessParams("csebbs", classes, per_class)
    reference = csebbs.CSEBBsPredictor(
        step_filter_length={c: p["step_filter_length"] for c, p in per_class.items()},
        merge_threshold_abs={c: p["merge_threshold_abs"] for c, p in per_class.items()},
        merge_threshold_rel={c: p["merge_threshold_rel"] for c, p in per_class.items()},
        sound_classes=classes).predict(scores, return_sed_scores=True)
    out = apply_postprocessing(scores, params)
    assert set(out) == set(reference) == set(scores)
    for clip in scores:
        pd.testing.assert_frame_equal(out[clip], reference[clip], check_exact=False, rtol=1e-12, atol=0)
    assert any(np.isneginf(table.to_numpy()).any() for table in out.values())  # boxes, not frames


def test_tuning_candidates_equal_sebbs_predictor(beats):
    """The grid search reuses one change detection per step filter length: same tables as predict()."""
    csebbs = pytest.importorskip("sebbs.csebbs")
    _, scores, _, _ = beats
    subset = {clip: scores[clip] for clip in list(scores)[:5]}
    classes = list(next(iter(scores.values())).columns[2:])
    candidates = csebbs_grid((0.32, 0.64), (0.2,), (2.0,))
    for candidate, tables in candidate_scores("csebbs", subset, candidates):
        reference = csebbs.CSEBBsPredictor(**candidate, sound_classes=classes).predict(subset, return_sed_scores=True)
        for clip in subset:
            pd.testing.assert_frame_equal(tables[clip], reference[clip], check_exact=False, rtol=1e-12, atol=0)


def test_csebbs_without_the_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sebbs", None)
    scores = {"a": pd.DataFrame({"onset": [0.0], "offset": [1.0], "Cat": [0.5]})}
    params = PostprocessParams("csebbs", ["Cat"], {"Cat": csebbs_grid()[0]})
    with pytest.raises(MissingExtra, match=r"--no-deps sebbs==1\.0\.2"):
        apply_postprocessing(scores, params)
    median = PostprocessParams("median", ["Cat"], {"Cat": {"window": 3}})
    assert apply_postprocessing(scores, median)["a"].equals(scores["a"])  # everything else works without it


def test_sebbs_tune_is_broken_in_this_release(beats):
    """sebbs 1.0.1/1.0.2: `csebbs.tune` builds predictors without `sound_classes` and fails; we therefore
    run the grid search ourselves. When this test fails, a fixed release can be adopted."""
    csebbs = pytest.importorskip("sebbs.csebbs")
    root = beats[0]
    with pytest.raises(TypeError, match="NoneType"):
        csebbs.tune(str(root / "scores"), str(root / "ground_truth.tsv"), str(root / "durations.tsv"),
                    step_filter_lengths=(0.48,), merge_thresholds_abs=(0.2,), merge_thresholds_rel=(2.0,),
                    selection_fn=csebbs.select_best_psds)
