"""PANNs Cnn14_16k: official layout and size, in-model log-mel against librosa, output layout, loading."""
import librosa
import numpy as np
import pytest
import torch

from desed_task.nnet import PANNsCnn14


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return PANNsCnn14().eval()


def test_parameter_count_and_official_keys(model):
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 79_953_408  # incl. the frozen STFT kernels and mel filters
    assert len(state) == 82
    assert state["spectrogram_extractor.stft.conv_real.weight"].shape == (257, 1, 512)
    assert state["logmel_extractor.melW"].shape == (257, 64)
    assert {"bn0.running_mean", "conv_block6.conv2.weight", "conv_block3.bn2.num_batches_tracked", "fc1.bias"} <= set(state)


def test_log_mel_equals_librosa(model):
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.3
    with torch.no_grad():
        ours = model.logmel_extractor(model.spectrogram_extractor(torch.from_numpy(audio)[None]))[0, 0].numpy()
    power = librosa.feature.melspectrogram(y=audio, sr=16000, n_fft=512, hop_length=160, window="hann", center=True,
                                           pad_mode="reflect", power=2.0, n_mels=64, fmin=50, fmax=8000)
    ref = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None).T
    assert ours.shape == (101, 64)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_outputs_and_frame_layout(model):
    captured = {}
    hook = model.conv_block3.register_forward_hook(lambda module, args, out: captured.update(block3=out))
    with torch.no_grad():
        out = model(torch.randn(1, 160000))
    hook.remove()
    assert out["frame"].shape == (1, 2048, 125) and out["global"].shape == (1, 2048)
    block3 = captured["block3"]  # (1, 256, 125, 8): frame row = channel * 8 + mel bin
    torch.testing.assert_close(out["frame"][0, 5 * 8 + 3], block3[0, 5, :, 3])


def test_freeze_bn_keeps_batch_norm_in_eval():
    net = PANNsCnn14().train()
    assert net.training and not net.bn0.training and not net.conv_block1.bn1.training
    assert not net.conv_block1.bn1.weight.requires_grad and net.conv_block1.conv1.weight.requires_grad
    assert not PANNsCnn14(freeze_bn=False).train().bn0.eval().training


def test_load_official_layout(model, tmp_path):
    state = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in model.state_dict().items()}
    path = tmp_path / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"model": {**state, "fc_audioset.weight": torch.zeros(527, 2048), "fc_audioset.bias": torch.zeros(527)}},
               path)
    net = PANNsCnn14.load_official(path)
    torch.testing.assert_close(net.conv_block4.conv1.weight, state["conv_block4.conv1.weight"])
    torch.save({"model": {**state, "extra.weight": torch.zeros(1)}}, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match="bad.pth.*unexpected keys \\['extra.weight'\\]"):
        PANNsCnn14.load_official(tmp_path / "bad.pth")
    with pytest.raises(FileNotFoundError, match="Cnn14_16k_mAP=0.438.pth.*zenodo"):
        PANNsCnn14.load_official(tmp_path / "missing.pth")
