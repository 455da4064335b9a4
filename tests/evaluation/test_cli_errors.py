"""Bad inputs through the CLI: a clear error naming the file and the line, exit status 2."""
import json

import pandas as pd
import pytest

from desed_task.evaluation.__main__ import main

GT = "filename\tonset\toffset\tevent_label\na.wav\t0.5\t2.0\tDog\nb.wav\t\t\t\n"
DURATIONS = "filename\tduration\na.wav\t10.0\nb.wav\t10.0\n"


@pytest.mark.parametrize(
    "detections, message",
    [
        ("filename\tonset\tevent_label\na.wav\t0.1\tDog\n", "line 1: missing column"),
        ("filename\tonset\toffset\tevent_label\na.wav\t0.1\t1.0\tDog\na.wav\t0.1\t1.0\tCow\n", "line 3: unknown event label 'Cow'"),
        ("filename\tonset\toffset\tevent_label\nz.wav\t0.1\t1.0\tDog\n", "line 2: clip 'z.wav' is not in the durations"),
        ("filename\tonset\toffset\tevent_label\na.wav\t-0.1\t1.0\tDog\n", "line 2: negative time"),
        ("filename\tonset\toffset\tevent_label\na.wav\t0.1\t1.0\tDog\na.wav\t3.0\t2.0\tDog\n", "line 3: offset 2.0 is before onset 3.0"),
        (",event_label,onset,offset,filename\n0,Dog,0.1,x,a.wav\n", "line 2: offset 'x' is not a number"),
    ],
)
def test_bad_detections(tmp_path, capsys, detections, message):
    (tmp_path / "gt.tsv").write_text(GT)
    (tmp_path / "dur.tsv").write_text(DURATIONS)
    path = tmp_path / ("det.csv" if detections.startswith(",") else "det.tsv")
    path.write_text(detections)
    rc = main(["--ground_truth", str(tmp_path / "gt.tsv"), "--durations", str(tmp_path / "dur.tsv"), "--detections", str(path)])
    error = capsys.readouterr().err
    assert rc == 2 and str(path) in error and message in error


def test_bad_ground_truth_and_good_run(tmp_path, capsys):
    (tmp_path / "gt.tsv").write_text(GT.replace("0.5\t2.0", "2.5\t2.0"))
    (tmp_path / "dur.tsv").write_text(DURATIONS)
    (tmp_path / "det.tsv").write_text("filename\tonset\toffset\tevent_label\na.wav\t0.5\t2.0\tDog\n")
    args = ["--ground_truth", str(tmp_path / "gt.tsv"), "--durations", str(tmp_path / "dur.tsv"), "--detections", str(tmp_path / "det.tsv")]
    assert main(args) == 2
    assert "gt.tsv, line 2: offset 2.0 is before onset 2.5" in capsys.readouterr().err
    (tmp_path / "gt.tsv").write_text(GT)
    assert main(args + ["--out", str(tmp_path / "r.json")]) == 0
    assert '"event_f1_macro": 1.0' in (tmp_path / "r.json").read_text()


def run_cli(tmp_path, capsys, ground_truth=GT, durations=DURATIONS, detections=None, extra=()):
    """Write the inputs, run the CLI on them; (exit status, stderr, JSON report or None)."""
    (tmp_path / "gt.tsv").write_text(ground_truth)
    (tmp_path / "dur.tsv").write_text(durations)
    args = ["--ground_truth", str(tmp_path / "gt.tsv"), "--durations", str(tmp_path / "dur.tsv"), *extra]
    if detections is not None:
        (tmp_path / "det.tsv").write_text(detections)
        args += ["--detections", str(tmp_path / "det.tsv")]
    out = tmp_path / "report.json"
    out.unlink(missing_ok=True)
    rc = main(args + ["--out", str(out)])
    return rc, capsys.readouterr().err, json.loads(out.read_text()) if out.exists() else None


DETECTION = "filename\tonset\toffset\tevent_label\na.wav\t0.5\t2.0\tDog\n"


def test_issue13_item8_unknown_ground_truth_label_is_an_error(tmp_path, capsys, anchors):
    desed = anchors / "desed"
    lines = (desed / "validation.tsv").read_text().splitlines(keepends=True)
    line = next(index for index, text in enumerate(lines) if text.rstrip("\n").endswith("\tSpeech"))
    lines[line] = lines[line].replace("\tSpeech", "\tspeech")
    (tmp_path / "validation.tsv").write_text("".join(lines))
    rc = main(["--ground_truth", str(tmp_path / "validation.tsv"), "--durations", str(desed / "validation_durations.tsv"),
               "--detections", str(desed / "baseline_student" / "predictions0.5.csv")])
    error = capsys.readouterr().err
    assert rc == 2 and f"validation.tsv, line {line + 1}: unknown event label 'speech'" in error

    rc, error, _ = run_cli(tmp_path, capsys, ground_truth=GT.replace("Dog", "Doorbell"), detections=DETECTION)
    assert rc == 2 and "gt.tsv, line 2: unknown event label 'Doorbell'" in error
    (tmp_path / "classes.txt").write_text("Doorbell\nDog\n")
    for classes in ("Doorbell,Dog", str(tmp_path / "classes.txt")):
        rc, error, report = run_cli(tmp_path, capsys, ground_truth=GT.replace("Dog", "Doorbell"),
                                    detections=DETECTION.replace("Dog", "Doorbell"), extra=["--classes", classes])
        assert rc == 0 and report["intersection_f1_macro"] == 1.0, error
    rc, error, _ = run_cli(tmp_path, capsys, detections=DETECTION, extra=["--classes", "Cat,Speech"])
    assert rc == 2 and "gt.tsv, line 2: unknown event label 'Dog'" in error
    scores = tmp_path / "scores"
    scores.mkdir()
    for clip in ("a", "b"):
        pd.DataFrame({"onset": [0.0, 5.0], "offset": [5.0, 10.0], "Dog": [0.9, 0.1], "Cat": [0.2, 0.1]}).to_csv(
            scores / f"{clip}.tsv", sep="\t", index=False)
    rc, error, report = run_cli(tmp_path, capsys, extra=["--scores", str(scores), "--classes", "Dog,Cat"])
    assert rc == 0 and "gt.tsv: no event of Cat; the threshold-independent PSDS averages over all score columns" in error
    rc, error, _ = run_cli(tmp_path, capsys, extra=["--scores", str(scores), "--classes", "Dog"])
    assert rc == 2 and "a.tsv, line 1: class columns ['Dog', 'Cat'] differ from the classes ['Dog']" in error


def test_issue13_item9_clips_and_events_outside_the_durations_are_errors(tmp_path, capsys):
    rc, error, _ = run_cli(tmp_path, capsys, durations="filename\tduration\na.wav\t10.0\n", detections=DETECTION)
    assert rc == 2 and "gt.tsv, line 3: clip 'b.wav' is not in the durations file" in error and "dur.tsv" in error
    rc, error, _ = run_cli(tmp_path, capsys, durations=DURATIONS.replace("a.wav\t10.0", "a.wav\t1.5"), detections=DETECTION)
    assert rc == 2 and "gt.tsv, line 2: event ends at 2 s, after the end of clip 'a.wav' (1.5 s in" in error
    assert "dur.tsv" in error
    past = DETECTION + "a.wav\t9.0\t10.5\tDog\n"
    rc, error, _ = run_cli(tmp_path, capsys, detections=past)
    assert rc == 2 and "det.tsv, line 3: event ends at 10.5 s, after the end of clip 'a.wav' (10 s in" in error
    rc, error, report = run_cli(tmp_path, capsys, detections=past, extra=["--allow_events_past_duration"])
    assert rc == 0 and "det.tsv: 1 events end after their clip's duration (up to 0.500 s" in error
    assert report["intersection_f1_macro"] == pytest.approx(2 / 3)
    rc, error, _ = run_cli(tmp_path, capsys, detections=DETECTION + "a.wav\t9.0\t10.0009\tDog\n")
    assert rc == 0 and error == "", "1 ms tolerance for rounded times"

    scores = tmp_path / "scores"
    scores.mkdir()
    for clip, end in (("a", 10.0), ("b", 10.5)):
        pd.DataFrame({"onset": [0.0, 5.0], "offset": [5.0, end], "Dog": [0.9, 0.1]}).to_csv(
            scores / f"{clip}.tsv", sep="\t", index=False)
    rc, error, _ = run_cli(tmp_path, capsys, extra=["--scores", str(scores), "--classes", "Dog"])
    assert rc == 2 and "b.tsv, line 3: last frame ends at 10.5 s, after the end of the clip (10 s in" in error
    rc, error, _ = run_cli(tmp_path, capsys, extra=["--scores", str(scores), "--classes", "Dog", "--allow_events_past_duration"])
    assert rc == 0 and "1 score tables end after their clip's duration (up to 0.500 s" in error


def test_issue13_item10_unreadable_inputs_are_one_line_errors(tmp_path, capsys):
    for detections in ("", "filename\tonset\toffset\tevent_label\n"):
        rc, error, report = run_cli(tmp_path, capsys, detections=detections)
        assert rc == 0, error
        assert report["intersection_f1_macro"] == 0.0 and report["event_f1_micro"] == 0.0
        assert report["segment_f1_macro_nan_as_zero"] == 0.0
    rc, error, _ = run_cli(tmp_path, capsys, detections=DETECTION + "a.wav\t3.0\t4.0\tDog\tDog\n")
    assert rc == 2 and error.strip().endswith("det.tsv, line 3: 5 fields, the header has 4")
    assert error.count("\n") == 1 and error.startswith("error: ")
    rc, error, _ = run_cli(tmp_path, capsys, ground_truth="", detections=DETECTION)
    assert rc == 2 and "gt.tsv, line 1: empty file" in error

    scores = tmp_path / "scores"
    scores.mkdir()
    table = pd.DataFrame({"onset": [0.0, 5.0], "offset": [5.0, 10.0], "Dog": [0.9, 0.1]})
    table.to_csv(scores / "a.tsv", sep="\t", index=False)
    rc, error, _ = run_cli(tmp_path, capsys, extra=["--scores", str(scores), "--classes", "Dog"])
    assert rc == 2 and error.count("\n") == 1
    assert f"{scores}: no score table b.tsv for clip 'b.wav' (" in error and "gt.tsv, line 3)" in error
    table.to_csv(scores / "b.tsv", sep="\t", index=False)
    (scores / "b.tsv").write_text((scores / "b.tsv").read_text() + "5.0\t10.0\t0.3\t0.2\n")
    rc, error, _ = run_cli(tmp_path, capsys, extra=["--scores", str(scores), "--classes", "Dog"])
    assert rc == 2 and "b.tsv, line 4: 4 fields, the header has 3" in error


def test_issue13_item12_plot_with_detections_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(tmp_path, capsys, detections=DETECTION, extra=["--plot", str(tmp_path / "plots")])
    assert exit_info.value.code == 2
    assert "--plot draws PSD-ROC curves, which need --scores or --operating_points" in capsys.readouterr().err
    assert not (tmp_path / "plots").exists()


def test_ground_truth_events_just_past_the_end_are_clipped_far_ones_are_errors(tmp_path, capsys):
    near = GT.replace("a.wav\t0.5\t2.0\tDog", "a.wav\t0.5\t2.0\tDog\na.wav\t9.0\t10.15\tDog")
    detections = DETECTION + "a.wav\t9.0\t10.0\tDog\n"
    rc, error, report = run_cli(tmp_path, capsys, ground_truth=near, detections=detections)
    assert rc == 0 and error.strip() == (
        f"notice: {tmp_path / 'gt.tsv'}: 1 events end up to 0.150 s after their clip's duration (tolerance 0.2 s); "
        "clipped to it")
    assert report["intersection_f1_macro"] == pytest.approx(1.0), "the clipped event matches a detection ending at 10 s"

    rc, error, report = run_cli(tmp_path, capsys, ground_truth=near, detections=detections,
                                extra=["--allow_events_past_duration"])
    assert rc == 0 and "notice" not in error and "gt.tsv: 1 events end after their clip's duration (up to 0.150 s" in error

    far = GT.replace("a.wav\t0.5\t2.0\tDog", "a.wav\t0.5\t2.0\tDog\na.wav\t9.0\t10.25\tDog")
    rc, error, _ = run_cli(tmp_path, capsys, ground_truth=far, detections=detections)
    assert rc == 2 and "gt.tsv, line 3: event ends at 10.25 s, after the end of clip 'a.wav' (10 s in" in error
