"""Log-mel frontend in pure torch, numerically equal to the DCASE baseline's torchaudio chain.

The baseline computes ``MelSpectrogram(power=1, window_fn=hamming_window(periodic=False))`` (HTK mel
scale, no filter normalisation), then ``AmplitudeToDB(stype="amplitude")`` with ``amin=1e-5`` and
clamps the result to [-50, 80] dB. torchaudio is not a dependency, so the filterbank and the chain are
written here.

The same class, with other arguments, is the frontend of other papers (``ATSTFrontend``: periodic Hann
window, power mel, dB with a top_db cutoff); each preset is a subclass that only fixes arguments.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

AMIN = 1e-5
DB_RANGE = (-50.0, 80.0)


def hz_to_mel_htk(freq: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + freq / 700.0)


def mel_to_hz_htk(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int, dtype=torch.float64
) -> torch.Tensor:
    """Triangular HTK mel filters (n_freqs, n_mels), unnormalised, as torchaudio ``melscale_fbanks``.

    FFT bin ``k`` sits at ``k * (sr / 2) / (n_freqs - 1)``; the ``n_mels + 2`` filter edges are equally
    spaced on the HTK mel scale between ``f_min`` and ``f_max``. Computed in float64, then cast.
    """
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    mel_edges = torch.linspace(
        float(hz_to_mel_htk(torch.tensor(float(f_min), dtype=torch.float64))),
        float(hz_to_mel_htk(torch.tensor(float(f_max), dtype=torch.float64))),
        n_mels + 2,
        dtype=torch.float64,
    )
    return _triangles(mel_to_hz_htk(mel_edges), all_freqs).to(dtype)


def _triangles(hz_edges: torch.Tensor, all_freqs: torch.Tensor) -> torch.Tensor:
    """Peak-1 triangles (n_freqs, len(hz_edges) - 2) between consecutive edges, sampled at ``all_freqs``."""
    widths = hz_edges[1:] - hz_edges[:-1]
    slopes = hz_edges.unsqueeze(0) - all_freqs.unsqueeze(1)
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


SLANEY_F_SP = 200.0 / 3  # Hz per mel below 1 kHz
SLANEY_MIN_LOG_HZ = 1000.0
SLANEY_MIN_LOG_MEL = SLANEY_MIN_LOG_HZ / SLANEY_F_SP
SLANEY_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel_slaney(freq: torch.Tensor) -> torch.Tensor:
    """Slaney's Auditory Toolbox mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above."""
    octaves = torch.log(torch.clamp(freq, min=SLANEY_MIN_LOG_HZ) / SLANEY_MIN_LOG_HZ)
    return torch.where(freq >= SLANEY_MIN_LOG_HZ, SLANEY_MIN_LOG_MEL + octaves / SLANEY_LOG_STEP, freq / SLANEY_F_SP)


def mel_to_hz_slaney(mel: torch.Tensor) -> torch.Tensor:
    above = SLANEY_MIN_LOG_HZ * torch.exp(SLANEY_LOG_STEP * (mel - SLANEY_MIN_LOG_MEL))
    return torch.where(mel >= SLANEY_MIN_LOG_MEL, above, SLANEY_F_SP * mel)


def slaney_mel_filterbank(
    n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int, dtype=torch.float64,
    norm: str | None = None,
) -> torch.Tensor:
    """Slaney-scale triangular mel filters (n_freqs, n_mels), as librosa ``filters.mel(htk=False, norm=norm)``:
    FFT bin ``k`` at ``k * (sr / 2) / (n_freqs - 1)``, the ``n_mels + 2`` edges equally spaced on the
    Slaney scale. ``norm=None``: peak 1 (UCLSER); ``"slaney"``: area 1 per filter (librosa's default,
    PANNs). Computed in float64, then cast."""
    if norm not in (None, "slaney"):
        raise ValueError(f"norm must be None or 'slaney', got {norm!r}")
    all_freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)
    mel_edges = torch.linspace(
        float(hz_to_mel_slaney(torch.tensor(float(f_min), dtype=torch.float64))),
        float(hz_to_mel_slaney(torch.tensor(float(f_max), dtype=torch.float64))),
        n_mels + 2,
        dtype=torch.float64,
    )
    hz_edges = mel_to_hz_slaney(mel_edges)
    filters = _triangles(hz_edges, all_freqs)
    if norm == "slaney":
        filters = filters * (2.0 / (hz_edges[2:] - hz_edges[:-2]))
    return filters.to(dtype)


def hz_to_mel_kaldi(freq: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log(1.0 + freq / 700.0)


def kaldi_mel_filterbank(
    n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int, dtype=torch.float64
) -> torch.Tensor:
    """Kaldi's triangular mel filters (n_freqs, n_mels), as ``torchaudio.compliance.kaldi.get_mel_banks``.

    Triangles are built on the mel axis ``1127 ln(1 + f / 700)`` (peak 1, not area-normalised) with
    ``n_mels + 2`` equally spaced edges in [mel(f_min), mel(f_max)]; FFT bin ``k`` sits at
    ``k * sr / n_fft``. As in the CP-JKU frontend, the Nyquist bin (the last row) gets weight 0.
    """
    n_fft = 2 * (n_freqs - 1)
    bin_mels = hz_to_mel_kaldi(torch.arange(n_freqs - 1, dtype=torch.float64) * sample_rate / n_fft)
    mel_low = float(hz_to_mel_kaldi(torch.tensor(float(f_min), dtype=torch.float64)))
    mel_high = float(hz_to_mel_kaldi(torch.tensor(float(f_max), dtype=torch.float64)))
    delta = (mel_high - mel_low) / (n_mels + 1)
    left = mel_low + torch.arange(n_mels, dtype=torch.float64) * delta
    center, right = left + delta, left + 2 * delta
    rising = (bin_mels.unsqueeze(1) - left) / (center - left)
    falling = (right - bin_mels.unsqueeze(1)) / (right - center)
    filters = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return torch.cat([filters, torch.zeros(1, n_mels, dtype=torch.float64)]).to(dtype)


MEL_SCALES = {"htk": mel_filterbank, "kaldi": kaldi_mel_filterbank, "slaney": slaney_mel_filterbank}
WINDOWS = {"hamming": torch.hamming_window, "hann": torch.hann_window}


def preemphasis(waveform: torch.Tensor, coefficient: float) -> torch.Tensor:
    """``y[n] = x[n + 1] - coefficient * x[n]`` (no padding: one sample shorter), as CP-JKU's conv1d."""
    return waveform[..., 1:] - coefficient * waveform[..., :-1]


def linear_spectrogram(
    waveform: torch.Tensor, n_fft: int, win_length: int, hop_length: int, window: torch.Tensor, power: float = 1.0
) -> torch.Tensor:
    """Magnitude (``power`` 1) or power (2) STFT (..., n_fft // 2 + 1, frames), centred with reflect padding."""
    shape = waveform.shape
    spec = torch.stft(
        waveform.reshape(-1, shape[-1]),
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window.to(waveform),
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    spec = spec.abs() if power == 1.0 else spec.real.square() + spec.imag.square() if power == 2.0 \
        else spec.abs().pow(power)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def amplitude_to_db(mels: torch.Tensor, amin: float = AMIN, db_range=DB_RANGE) -> torch.Tensor:
    """``20 * log10(max(x, amin))`` (reference 1.0, no top_db) clamped to ``db_range``: the DCASE dB."""
    return mel_to_db(mels, 1.0, amin, db_range)


def mel_to_db(
    mels: torch.Tensor,
    power: float = 1.0,
    amin: float = AMIN,
    db_range=DB_RANGE,
    top_db: float | None = None,
    top_db_per_clip: bool = True,
) -> torch.Tensor:
    """dB of a magnitude (``power=1``: 20 log10) or power (``power=2``: 10 log10) mel, floored at ``amin``,
    reference 1.0, then (``top_db``) raised to at least ``peak - top_db``, then clamped to ``db_range``.

    The peak is each clip's own (over its last two axes) with ``top_db_per_clip``, else the whole tensor's,
    as torchaudio's ``AmplitudeToDB`` does for a 3-D (batch, n_mels, frames) input.
    """
    db = (20.0 / power) * torch.log10(torch.clamp(mels, min=amin))
    if top_db is not None:
        peak = db.amax(dim=(-2, -1), keepdim=True) if top_db_per_clip else db.amax()
        db = torch.maximum(db, peak - top_db)
    return db.clamp(min=db_range[0], max=db_range[1])


class MelFrontend(nn.Module):
    """(batch, samples) waveform -> (batch, n_mels, frames) clamped dB log-mel.

    With ``center=True`` there are ``samples // hop_length + 1`` frames (626 for 10 s at 16 kHz).
    The defaults are the DCASE baseline's; presets of other papers choose the ``window`` (hamming | hann,
    symmetric or ``periodic_window``), ``power`` (1 magnitude, 2 power), ``mel_scale`` (htk | kaldi |
    slaney), ``preemphasis`` (None or its coefficient) and the dB conversion (``amin``, ``db_range``,
    ``top_db``, ``top_db_per_clip``: see ``mel_to_db``), or their own log/normalisation in ``forward``
    (see ``ATSTFrontend``, ``CPJKUFrontend``, ``UCLSERFrontend``).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 2048,
        win_length: int = 2048,
        hop_length: int = 256,
        f_min: float = 0.0,
        f_max: float = 8000.0,
        n_mels: int = 128,
        window: str = "hamming",
        power: float = 1.0,
        mel_scale: str = "htk",
        preemphasis: float | None = None,
        periodic_window: bool = False,
        amin: float = AMIN,
        db_range=DB_RANGE,
        top_db: float | None = None,
        top_db_per_clip: bool = True,
    ):
        super().__init__()
        if window not in WINDOWS or mel_scale not in MEL_SCALES:
            raise ValueError(f"window must be one of {list(WINDOWS)} and mel_scale one of {list(MEL_SCALES)}, "
                             f"got {window!r}, {mel_scale!r}")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.f_min = f_min
        self.f_max = f_max
        self.power = power
        self.mel_scale = mel_scale
        self.preemphasis = preemphasis
        self.amin = amin
        self.db_range = tuple(db_range)
        self.top_db = top_db
        self.top_db_per_clip = top_db_per_clip
        # Derived constants: float64 (cast to the input dtype at use, so float64 inputs keep full
        # precision) and non-persistent (they follow from the arguments, checkpoints need not hold them).
        self.register_buffer(
            "window",
            WINDOWS[window](win_length, periodic=periodic_window, dtype=torch.float64),
            persistent=False,
        )
        self.register_buffer("filterbank", self.make_filterbank(f_min, f_max), persistent=False)

    def make_filterbank(self, f_min: float, f_max: float) -> torch.Tensor:
        """The (n_fft // 2 + 1, n_mels) float64 filters of this frontend's mel scale for a frequency range."""
        return MEL_SCALES[self.mel_scale](self.n_fft // 2 + 1, f_min, f_max, self.n_mels, self.sample_rate)

    @classmethod
    def from_config(cls, feats: Mapping) -> "MelFrontend":
        """Build from the config's ``feats`` section (``n_filters`` is n_fft, ``n_window`` the window)."""
        return cls(
            sample_rate=feats["sample_rate"],
            n_fft=feats["n_filters"],
            win_length=feats["n_window"],
            hop_length=feats["hop_length"],
            f_min=feats["f_min"],
            f_max=feats["f_max"],
            n_mels=feats["n_mels"],
        )

    def mel_amplitude(self, waveform: torch.Tensor, filterbank: torch.Tensor | None = None) -> torch.Tensor:
        """Mel-filtered magnitude (or power) spectrogram (..., n_mels, frames), before any log.

        Pre-emphasis first when configured; ``filterbank`` replaces the stored one (e.g. a redrawn f_max).
        """
        if self.preemphasis is not None:
            waveform = preemphasis(waveform, self.preemphasis)
        spec = linear_spectrogram(waveform, self.n_fft, self.win_length, self.hop_length, self.window, self.power)
        filterbank = self.filterbank if filterbank is None else filterbank
        return torch.matmul(spec.transpose(-1, -2), filterbank.to(spec)).transpose(-1, -2)

    def to_db(self, mels: torch.Tensor) -> torch.Tensor:
        """The frontend's dB conversion of ``mel_amplitude`` outputs (mixed ones included)."""
        return mel_to_db(mels, self.power, self.amin, self.db_range, self.top_db, self.top_db_per_clip)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.to_db(self.mel_amplitude(waveform))


class UCLSERFrontend(MelFrontend):
    """UCLSER preset (official ``wav2spec``): waveform at 22,050 Hz -> (..., frames, 96) log10 mel.

    Power STFT (n_fft 2048, periodic Hamming window of 660 samples zero-padded to 2048, hop 220, centred,
    reflect padding) of ``waveform + 1.1e-8`` (the official code adds eps to the signal too), 96 Slaney
    mel bands of peak 1 from 50 to 10,500 Hz, ``log10(mel + 1.1e-8)``; frames first, as the network input
    patches (101 frames per second).
    """

    EPS = 1.1e-8

    def __init__(self):
        super().__init__(sample_rate=22050, n_fft=2048, win_length=660, hop_length=220, f_min=50.0,
                         f_max=10500.0, n_mels=96, window="hamming", periodic_window=True, power=2.0,
                         mel_scale="slaney")

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.log10(self.mel_amplitude(waveform + self.EPS) + self.EPS).transpose(-1, -2)
