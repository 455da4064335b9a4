"""The vectorised threshold-independent PSDS against sed_scores_eval's own implementation, edge cases included."""
import numpy as np
import pandas as pd
import pytest
import sed_scores_eval
from sed_scores_eval.base_modules import statistics as sse_statistics
from sed_scores_eval.intersection_based.intermediate_statistics import statistics_fn

from desed_task.evaluation import PSDS1, PSDS2, PSDSScenario, psds_from_scores, threshold_independent_psds
from desed_task.evaluation.intersection_curves import accumulated_statistics, score_runs
from desed_task.evaluation.psds import ground_truth_events

LABELS = ["A", "B", "C"]
WIDE = PSDSScenario("wide", dtc_threshold=0.5, gtc_threshold=0.3, cttc_threshold=0.2, alpha_ct=1.0, alpha_st=0.5,
                    max_efpr=2000.0)


def random_case(seed, ties):
    """Clips of different lengths and frame hops; no events, touching, overlapping and frame-aligned events."""
    rng = np.random.default_rng(seed)
    scores, rows, durations = {}, [], {}
    for index in range(40):
        clip = f"clip{index}"
        n_frames = int(rng.integers(3, 40))
        hop = float(rng.choice([0.064, 0.1, 0.25]))
        times = np.round(np.arange(n_frames + 1) * hop, 6)
        durations[f"{clip}.wav"] = float(times[-1])
        clip_rows = []
        kind = index % 5
        if kind:
            for _ in range(int(rng.integers(1, 4))):
                onset = round(float(rng.uniform(0, times[-1] * 0.8)), 3)
                offset = round(min(onset + float(rng.uniform(0.05, times[-1] / 2)), float(times[-1])), 3)
                clip_rows.append((f"{clip}.wav", onset, offset, str(rng.choice(LABELS))))
        if kind == 2:  # touching events of one class, on frame boundaries
            clip_rows += [(f"{clip}.wav", times[0], times[1], "A"), (f"{clip}.wav", times[1], times[2], "A")]
        if kind == 3:  # overlapping events of one class (merged before evaluation)
            clip_rows += [(f"{clip}.wav", 0.0, times[-1] / 2, "B"), (f"{clip}.wav", times[-1] / 4, times[-1] * 0.75, "B")]
        values = rng.uniform(size=(n_frames, len(LABELS))) * 0.6
        for _, onset, offset, label in clip_rows:  # the model is somewhat right: higher scores over the events
            inside = (times[1:] > onset) & (times[:-1] < offset)
            values[inside, LABELS.index(label)] += rng.uniform(0.1, 0.4)
        if ties:
            values = np.round(values * 4) / 4
        scores[clip] = pd.DataFrame(values, columns=LABELS).assign(onset=times[:-1], offset=times[1:])[
            ["onset", "offset", *LABELS]]
        rows += clip_rows or [(f"{clip}.wav", np.nan, np.nan, np.nan)]
    ground_truth = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
    return scores, ground_truth, durations


def reference_inputs(scores, ground_truth, durations):
    """What sed_scores_eval gets: the merged events of the clips that have events, their scores and durations."""
    events = {clip: clip_events for clip, clip_events in ground_truth_events(ground_truth).items() if clip_events}
    return {clip: scores[clip] for clip in events}, events, {clip: durations[f"{clip}.wav"] for clip in events}


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_accumulated_statistics_equal_sed_scores_eval(seed, ties):
    scores, ground_truth, _ = random_case(seed, ties)
    ref_scores, events, _ = reference_inputs(scores, ground_truth, {f"{c}.wav": 1.0 for c in scores})
    runs = score_runs(scores, events, LABELS)
    for scenario in (PSDS1, PSDS2, WIDE):
        criteria = dict(dtc_threshold=scenario.dtc_threshold, gtc_threshold=scenario.gtc_threshold,
                        cttc_threshold=scenario.cttc_threshold)
        ours = accumulated_statistics(runs, **criteria)
        deltas = sse_statistics.intermediate_statistics_deltas(ref_scores, events, statistics_fn, time_decimals=6,
                                                               **criteria)
        reference = sse_statistics.accumulated_intermediate_statistics_from_deltas(deltas)
        for label in LABELS:
            (thresholds, stats), (ref_thresholds, ref_stats) = ours[label], reference[label]
            np.testing.assert_array_equal(thresholds, ref_thresholds)
            np.testing.assert_array_equal(stats["tps"], ref_stats["tps"])
            np.testing.assert_array_equal(stats["fps"], ref_stats["fps"])
            if scenario.cttc_threshold is not None:
                assert stats["cts"].keys() == ref_stats["cts"].keys()
                for other, counts in ref_stats["cts"].items():
                    np.testing.assert_array_equal(stats["cts"][other], counts)


@pytest.mark.parametrize("ties", [False, True])
def test_psds_values_and_curves_equal_sed_scores_eval(ties):
    scores, ground_truth, durations = random_case(7, ties)
    ref_scores, events, ref_durations = reference_inputs(scores, ground_truth, durations)
    scenarios = (PSDS1, PSDS2, WIDE)
    ours = threshold_independent_psds(scores, ground_truth, durations, scenarios)
    through_sse = threshold_independent_psds(scores, ground_truth, durations, scenarios, backend="sed_scores_eval")
    assert 0.0 < ours[-1].value < 1.0 and len(ours[-1].roc[0]) > 3  # a non-trivial curve
    for scenario, result, other_backend in zip(scenarios, ours, through_sse):
        value, per_class, (etpr, efpr), per_class_rocs = sed_scores_eval.intersection_based.psds(
            ref_scores, events, ref_durations, dtc_threshold=scenario.dtc_threshold,
            gtc_threshold=scenario.gtc_threshold, cttc_threshold=scenario.cttc_threshold, alpha_ct=scenario.alpha_ct,
            alpha_st=scenario.alpha_st, max_efpr=scenario.max_efpr,
        )
        for candidate in (result, other_backend):
            assert abs(candidate.value - value) < 1e-9
            assert candidate.per_class == pytest.approx(per_class, abs=1e-9)
            np.testing.assert_allclose(candidate.roc[0], efpr, atol=1e-9)
            np.testing.assert_allclose(candidate.roc[1], etpr, atol=1e-9)
            for label, (tpr, class_efpr, _) in per_class_rocs.items():
                np.testing.assert_allclose(candidate.per_class_rocs[label][0], class_efpr, atol=1e-9)
                np.testing.assert_allclose(candidate.per_class_rocs[label][1], tpr, atol=1e-9)


def test_score_column_order_and_unknown_backend():
    scores, ground_truth, durations = random_case(3, ties=False)
    expected = psds_from_scores(scores, ground_truth, durations, PSDS2)
    reordered = {clip: table[["onset", "offset", "C", "A", "B"]] if i % 2 else table
                 for i, (clip, table) in enumerate(scores.items())}
    assert psds_from_scores(reordered, ground_truth, durations, PSDS2).per_class == expected.per_class
    with pytest.raises(ValueError, match="unknown PSDS backend"):
        psds_from_scores(scores, ground_truth, durations, backend="loops")
