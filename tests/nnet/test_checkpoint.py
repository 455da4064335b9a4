"""load_state_dict_by_name: prefix stripping, legacy CNN names, clear errors."""
import pytest
import torch

from desed_task.nnet import CRNN, load_state_dict_by_name

SMALL = {"nb_filters": [4, 8], "pooling": [[2, 2], [2, 64]], "kernel_size": [3, 3], "padding": [1, 1],
         "stride": [1, 1], "n_RNN_cell": 8, "nclass": 3}


def lightning_checkpoint(student, teacher):
    state = {f"sed_student.{k}": v for k, v in student.state_dict().items()}
    state.update({f"sed_teacher.{k}": v for k, v in teacher.state_dict().items()})
    return {"state_dict": state, "epoch": 3}


def test_loads_student_and_teacher_by_prefix():
    torch.manual_seed(0)
    student, teacher = CRNN(**SMALL), CRNN(**SMALL)
    checkpoint = lightning_checkpoint(student, teacher)
    for prefix, source in (("sed_student.", student), ("sed_teacher.", teacher)):
        target = CRNN(**SMALL)
        load_state_dict_by_name(target, checkpoint, prefix=prefix)
        for key, value in source.state_dict().items():
            assert torch.equal(target.state_dict()[key], value), key


def test_legacy_keys_without_inner_cnn_level():
    torch.manual_seed(1)
    source = CRNN(**SMALL)
    legacy = {("sed_student." + k.replace("cnn.cnn.", "cnn.", 1)): v for k, v in source.state_dict().items()}
    assert "sed_student.cnn.conv0.weight" in legacy
    target = CRNN(**SMALL)
    load_state_dict_by_name(target, legacy)
    assert torch.equal(target.cnn.cnn.conv0.weight, source.cnn.cnn.conv0.weight)


def test_mismatch_lists_missing_and_unexpected_keys():
    state = {f"sed_student.{k}": v for k, v in CRNN(**SMALL).state_dict().items()}
    del state["sed_student.dense.bias"]
    state["sed_student.extra.weight"] = torch.zeros(1)
    with pytest.raises(KeyError) as error:
        load_state_dict_by_name(CRNN(**SMALL), state)
    assert "dense.bias" in str(error.value) and "extra.weight" in str(error.value)
    result = load_state_dict_by_name(CRNN(**SMALL), state, strict=False)
    assert result.missing_keys == ["dense.bias"] and result.unexpected_keys == ["extra.weight"]
    with pytest.raises(KeyError, match="sed_teacher"):
        load_state_dict_by_name(CRNN(**SMALL), {"sed_student.dense.bias": torch.zeros(3)}, prefix="sed_teacher.")
