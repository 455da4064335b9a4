"""Bad inputs through the CLI: a clear error naming the file and the line, exit status 2."""
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
