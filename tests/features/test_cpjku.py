"""CPJKUFrontend against an independent numpy/scipy computation of the official chain; training draws."""
import numpy as np
import pytest
import scipy.signal
import torch

from desed_task.features import CPJKUFrontend
from desed_task.features.cpjku import frequency_mask


def kaldi_filters_numpy(n_mels=256, n_fft=4096, sr=32000, fmin=0.0, fmax=15500.0):
    """Kaldi ``get_mel_banks`` written from its formula, padded with a zero Nyquist column: (n_mels, 2049)."""
    mel = lambda f: 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    delta = (mel(fmax) - mel(fmin)) / (n_mels + 1)
    left = mel(fmin) + np.arange(n_mels)[:, None] * delta
    bins = mel(np.arange(n_fft // 2) * sr / n_fft)[None, :]
    up = (bins - left) / delta
    down = (left + 2 * delta - bins) / delta
    return np.pad(np.maximum(0.0, np.minimum(up, down)), ((0, 0), (0, 1)))


def reference_cpjku(x: np.ndarray, fmax=15500.0) -> np.ndarray:
    """float64: pre-emphasis, framed FFT of the zero-padded symmetric Hann window, power, mel, log, norm."""
    y = x[1:] - 0.97 * x[:-1]
    window = np.zeros(4096)
    window[512:512 + 3072] = scipy.signal.get_window("hann", 3072, fftbins=False)
    padded = np.pad(y, 2048, mode="reflect")
    n_frames = 1 + len(y) // 500
    frames = np.stack([padded[i * 500:i * 500 + 4096] for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = kaldi_filters_numpy(fmax=fmax) @ power.T
    return (np.log(mel + 1e-5) + 4.5) / 5


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 32000
    return np.stack([0.3 * np.sin(2 * np.pi * 1000 * t) + 0.02 * rng.standard_normal(32000),
                     0.1 * rng.standard_normal(32000)])


def test_filterbank_is_kaldi_with_zero_nyquist():
    frontend = CPJKUFrontend()
    ours = frontend.filterbank.numpy().T
    np.testing.assert_allclose(ours, kaldi_filters_numpy(), atol=1e-12)
    assert ours.shape == (256, 2049) and ours[:, -1].sum() == 0 and ours.max() == pytest.approx(1, abs=0.05)
    assert (ours.sum(axis=1) > 0).all()


def test_eval_output_equals_reference(clips):
    frontend = CPJKUFrontend().eval()
    out = frontend(torch.from_numpy(clips).float())
    assert out.shape == (2, 1, 256, 64) and out.dtype == torch.float32
    ref = np.stack([reference_cpjku(c) for c in clips])
    np.testing.assert_allclose(out[:, 0].numpy(), ref, atol=2e-4)
    out64 = frontend(torch.from_numpy(clips))
    np.testing.assert_allclose(out64[:, 0].numpy(), ref, atol=1e-9)


def test_training_redraws_fmax_per_batch_in_official_range(clips):
    frontend = CPJKUFrontend(freqm=0).train()
    x = torch.from_numpy(clips[:1])
    torch.manual_seed(3)
    f_min = int(torch.randint(1, (1,)))  # the official order: f_min draw (always 0), then f_max
    f_max = 15500 + 500 - int(torch.randint(1000, (1,)))
    assert f_min == 0 and 15001 <= f_max <= 16000
    torch.manual_seed(3)
    out = frontend(x)
    ref = reference_cpjku(clips[0], fmax=float(f_max))
    np.testing.assert_allclose(out[0, 0].numpy(), ref, atol=1e-9)
    outs = [frontend(x) for _ in range(3)]
    assert not torch.equal(outs[0], outs[1]) or not torch.equal(outs[1], outs[2])


def test_frequency_mask_per_clip_and_shared():
    logmel = torch.ones(64, 256, 5)
    torch.manual_seed(0)
    per_clip = frequency_mask(logmel, 48)
    rows = (per_clip[:, :, 0] == 0)
    widths = rows.sum(1)
    assert widths.max() <= 47 and widths.float().mean() > 10
    assert len({tuple(r.nonzero().flatten().tolist()) for r in rows}) > 30  # independent bands
    for r in rows:  # one contiguous band, same on every frame
        idx = r.nonzero().flatten()
        assert len(idx) == 0 or idx.max() - idx.min() + 1 == len(idx)
    assert torch.equal(per_clip[:, :, 0], per_clip[:, :, 4])
    shared = frequency_mask(logmel, 48, shared=True)
    assert (shared == shared[:1]).all()


def test_mask_fill_is_0_9_after_normalisation(clips):
    frontend = CPJKUFrontend(freqm=48).train()
    torch.manual_seed(1)
    out = frontend(torch.from_numpy(clips).float().repeat(8, 1))
    masked_rows = (out[:, 0] == 0.9).all(-1)
    assert masked_rows.any() and masked_rows.sum(1).max() <= 47
