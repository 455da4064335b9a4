"""IRCT augmentations (tau1 / tau2 sets), hard mixup and the three-view batch builder, vectorised torch.

Domain per augmentation (chosen for cost and exactness; the reference daperera/irct applies all of them
to waveforms or linear-amplitude mels before the log):

=============== ========== ==================================================================
augmentation    domain     what it does (strength s in 1..5)
=============== ========== ==================================================================
pitch_shift     waveform   +-50*s cents: FFT resampling by 2^(cents/1200), then a phase-vocoder
                           time stretch back to the original length (no sox).
time_mask       waveform   5*s masks per clip, each 1 % of the clip long, set to silence
                           (as the reference, which masks samples).
time_shift      log-mel    circular roll by int(n_label_frames*s/10) label frames (s/10 of the
                           clip), i.e. a whole number of frames at every CRNN layer, so the
                           equivariance target is exact. The reference rolls the waveform by the
                           same fraction; the log-mel roll differs only in the STFT edge frames.
freq_mask       log-mel    one band of 2*s consecutive mel bins per clip set to the dB floor of
                           the frontend (= zero amplitude, as the reference's mask before the log).
filter_augment  log-mel    2-4 random mel bands per batch, one gain per clip and band uniform in
                           [-7.5, 6] dB, added in dB (= multiplying the amplitude mel); strength
                           unused, as in the reference.
=============== ========== ==================================================================
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from desed_task.features.mel import DB_RANGE

AUGMENTATION_SETS = {
    "tau1": ("time_mask", "pitch_shift", "time_shift"),
    "tau2": ("time_mask", "pitch_shift", "time_shift", "freq_mask", "filter_augment"),
}
WAVEFORM_AUGMENTATIONS = ("pitch_shift", "time_mask")
MAX_STRENGTH = 5
FILTER_DB_RANGE = (-7.5, 6.0)
VIEWS = ("original", "mixup", "augmented")


@dataclass(frozen=True)
class Augmentation:
    """One batch-level augmentation draw: name, strength s and its batch-level parameters."""

    name: str
    strength: int
    cents: float = 0.0
    shift_fraction: float = 0.0
    n_filter_bands: int = 0


def sample_augmentation(aug_set: str, generator: torch.Generator | None = None) -> Augmentation:
    """Pick one augmentation of `aug_set` ("tau1" | "tau2") uniformly and a strength s ~ U{1..5}."""
    names = AUGMENTATION_SETS[aug_set]
    name = names[int(torch.randint(len(names), (1,), generator=generator))]
    strength = int(torch.randint(1, MAX_STRENGTH + 1, (1,), generator=generator))
    sign = 1.0 if bool(torch.rand(1, generator=generator) < 0.5) else -1.0
    n_bands = int(torch.randint(2, 5, (1,), generator=generator))
    return Augmentation(
        name=name,
        strength=strength,
        cents=sign * 50.0 * strength if name == "pitch_shift" else 0.0,
        shift_fraction=strength / 10 if name == "time_shift" else 0.0,
        n_filter_bands=n_bands if name == "filter_augment" else 0,
    )


def fft_resample(waveforms: torch.Tensor, new_length: int) -> torch.Tensor:
    """Band-limited resampling of (..., L) to (..., new_length) samples by spectrum truncation/padding."""
    length = waveforms.shape[-1]
    spectrum = torch.fft.rfft(waveforms, dim=-1)
    n_bins = new_length // 2 + 1
    if n_bins <= spectrum.shape[-1]:
        spectrum = spectrum[..., :n_bins]
    else:
        spectrum = torch.nn.functional.pad(spectrum, (0, n_bins - spectrum.shape[-1]))
    return torch.fft.irfft(spectrum, n=new_length, dim=-1) * (new_length / length)


def phase_vocoder_stretch(
    waveforms: torch.Tensor, new_length: int, n_fft: int = 1024, hop_length: int = 256
) -> torch.Tensor:
    """Change the duration of (B, L) to (B, new_length) samples keeping the pitch (phase vocoder).

    Output frame k reads the input at fractional frame position k * (n_in - 1) / (n_out - 1):
    magnitudes are interpolated linearly, phases advance by the measured per-hop phase increment.
    """
    window = torch.hann_window(n_fft, device=waveforms.device, dtype=waveforms.dtype)
    spec = torch.stft(waveforms, n_fft, hop_length, window=window, center=True, return_complex=True)
    n_in = spec.shape[-1]
    n_out = new_length // hop_length + 1
    steps = torch.linspace(0, n_in - 1, n_out, device=waveforms.device, dtype=torch.float64)
    idx0 = steps.floor().long().clamp(max=n_in - 1)
    idx1 = (idx0 + 1).clamp(max=n_in - 1)
    alpha = (steps - idx0).to(waveforms.dtype)
    before, after = spec[..., idx0], spec[..., idx1]
    magnitude = torch.lerp(before.abs(), after.abs(), alpha)
    increment = torch.angle(after * before.conj())
    accumulated = torch.cumsum(increment, dim=-1) - increment
    # Anchor the phase on a mid-clip frame (the first frame's phases are not coherent across bins
    # because of the reflect padding); the anchor needs the unwrapped advance of the bin frequency.
    anchor = n_out // 2
    omega = (2 * math.pi * hop_length / n_fft) * torch.arange(spec.shape[-2], device=waveforms.device)
    omega = omega.to(waveforms.dtype)
    deviation = increment[..., anchor] - omega
    advance = omega + deviation - 2 * math.pi * torch.round(deviation / (2 * math.pi))
    anchor_phase = torch.angle(before[..., anchor]) + alpha[anchor] * advance
    phase = anchor_phase.unsqueeze(-1) + (accumulated - accumulated[..., anchor : anchor + 1])
    stretched = torch.polar(magnitude, phase)
    return torch.istft(stretched, n_fft, hop_length, window=window, center=True, length=new_length)


def pitch_shift(waveforms: torch.Tensor, cents: float, n_fft: int = 1024, hop_length: int = 256) -> torch.Tensor:
    """Shift the pitch of (B, L) waveforms by `cents` keeping the length L.

    Resampling to L / 2^(cents/1200) samples scales every frequency by that ratio (at the same sample
    rate) and shortens the clip; the phase vocoder then stretches it back to L samples.
    """
    if cents == 0:
        return waveforms.clone()
    length = waveforms.shape[-1]
    resampled = fft_resample(waveforms, round(length / 2 ** (cents / 1200)))
    return phase_vocoder_stretch(resampled, length, n_fft, hop_length)


def interval_mask(length: int, starts: torch.Tensor, width: int) -> torch.Tensor:
    """Boolean (B, length) mask, True inside any [start, start + width) of `starts` (B, n)."""
    batch = starts.shape[0]
    edges = torch.zeros(batch, length + 1, device=starts.device)
    ones = torch.ones_like(starts, dtype=edges.dtype)
    edges.scatter_add_(1, starts, ones)
    edges.scatter_add_(1, (starts + width).clamp(max=length), -ones)
    return torch.cumsum(edges, dim=1)[:, :length] > 0


def time_mask(
    waveforms: torch.Tensor, strength: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Silence 5*s random segments of 1 % of the clip per clip; returns (masked, starts (B, 5*s))."""
    batch, length = waveforms.shape
    width = int(0.01 * length)
    starts = torch.randint(0, length - width + 1, (batch, 5 * strength), generator=generator)
    starts = starts.to(waveforms.device)
    return waveforms.masked_fill(interval_mask(length, starts, width), 0.0), starts


def label_frame_shift(n_label_frames: int, shift_fraction: float) -> int:
    """Shift in label frames for a shift of `shift_fraction` of the clip (floored, as the reference)."""
    return int(n_label_frames * shift_fraction)


def time_shift(features: torch.Tensor, shift_frames: int) -> torch.Tensor:
    """Circularly roll (B, n_mels, frames) log-mels later in time by `shift_frames` frames."""
    return torch.roll(features, shifts=shift_frames, dims=-1)


def freq_mask(
    features: torch.Tensor,
    strength: int,
    generator: torch.Generator | None = None,
    fill_value: float = DB_RANGE[0],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Set one band of 2*s consecutive mel bins per clip to `fill_value`; returns (masked, starts (B,))."""
    batch, n_mels, _ = features.shape
    width = 2 * strength
    starts = torch.randint(0, n_mels - width + 1, (batch,), generator=generator).to(features.device)
    bins = torch.arange(n_mels, device=features.device)
    masked = (bins >= starts[:, None]) & (bins < starts[:, None] + width)
    return features.masked_fill(masked[:, :, None], fill_value), starts


def filter_augment(
    features: torch.Tensor,
    n_bands: int,
    generator: torch.Generator | None = None,
    db_range: tuple[float, float] = FILTER_DB_RANGE,
    clamp_range: tuple[float, float] = DB_RANGE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FilterAugment on dB log-mels: random band edges, per-clip band gains added in dB.

    Returns (filtered, per-bin gains (B, n_mels) in dB). Band edges are drawn in [1, n_mels - 1) and
    sorted (a repeated edge gives an empty band, as in the reference).
    """
    batch, n_mels, _ = features.shape
    inner = torch.sort(torch.randint(1, n_mels - 1, (n_bands - 1,), generator=generator)).values
    edges = torch.cat([torch.tensor([0]), inner, torch.tensor([n_mels])])
    band_gains = torch.rand(batch, n_bands, generator=generator) * (db_range[1] - db_range[0]) + db_range[0]
    band_of_bin = torch.bucketize(torch.arange(n_mels), edges[1:-1], right=True)
    gains = band_gains[:, band_of_bin].to(features)
    return (features + gains[:, :, None]).clamp(*clamp_range), gains


@dataclass
class AugmentInfo:
    """What an applied augmentation did: the draw and, for a time shift, the roll in input frames."""

    augmentation: Augmentation
    shift_input_frames: int = 0
    details: dict = field(default_factory=dict)


def apply_augmentation(
    augmentation: Augmentation,
    waveforms: torch.Tensor,
    frontend: Callable[[torch.Tensor], torch.Tensor],
    generator: torch.Generator | None = None,
    net_pooling: int = 4,
) -> tuple[torch.Tensor, AugmentInfo]:
    """Apply one augmentation to (B, L) waveforms and return (augmented log-mels, AugmentInfo).

    Waveform augmentations run before `frontend` (waveform -> dB log-mel), the others after it.
    """
    name = augmentation.name
    info = AugmentInfo(augmentation)
    if name == "pitch_shift":
        return frontend(pitch_shift(waveforms, augmentation.cents)), info
    if name == "time_mask":
        masked, info.details["starts"] = time_mask(waveforms, augmentation.strength, generator)
        return frontend(masked), info
    features = frontend(waveforms)
    if name == "time_shift":
        shift = label_frame_shift(features.shape[-1] // net_pooling, augmentation.shift_fraction)
        info.shift_input_frames = shift * net_pooling
        info.details["shift_label_frames"] = shift
        return time_shift(features, info.shift_input_frames), info
    if name == "freq_mask":
        masked, info.details["starts"] = freq_mask(features, augmentation.strength, generator)
        return masked, info
    if name == "filter_augment":
        filtered, info.details["gains_db"] = filter_augment(features, augmentation.n_filter_bands, generator)
        return filtered, info
    raise ValueError(f"unknown augmentation {name!r}")


def hard_mixup(
    waveforms: torch.Tensor, n_extra: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Add `n_extra` randomly permuted clips of the batch to each clip (IRCT's hard mixup).

    Returns (mixed, partners): partners[k][i] is the index of the k-th clip added to clip i.
    """
    batch = waveforms.shape[0]
    partners = [torch.randperm(batch, generator=generator).to(waveforms.device) for _ in range(n_extra)]
    mixed = waveforms.clone()
    for partner in partners:
        mixed = mixed + waveforms[partner]
    return mixed, partners


def mix_labels(labels: torch.Tensor, partners: Sequence[torch.Tensor]) -> torch.Tensor:
    """Hard-mixup targets: union (clamped sum) of the clip's labels and its partners' labels."""
    mixed = labels.clone()
    for partner in partners:
        mixed = mixed + labels[partner]
    return mixed.clamp(max=1)


@dataclass
class PartPlan:
    """One data part of the batch (e.g. synthetic) with its mixup partners and augmentation.

    `rows` are the part's rows in the batch, `ratio` its share of the batch (the reference's
    partition ratio), `partners` global row indices added to each row in the mixup view.
    """

    name: str
    rows: slice
    ratio: float
    partners: list[torch.Tensor]
    info: AugmentInfo


@dataclass
class IRCTViews:
    """The original, mixup and augmented views of a batch (dB log-mels), their labels and the plan."""

    features: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    parts: list[PartPlan]


def split_batch_parts(batch_sizes: Sequence[int]) -> list[tuple[slice, float]]:
    """Rows and batch share of each data part of a [part0 | part1 | ...] batch."""
    total = sum(batch_sizes)
    bounds = [0, *torch.cumsum(torch.tensor(batch_sizes), 0).tolist()]
    return [(slice(bounds[i], bounds[i + 1]), batch_sizes[i] / total) for i in range(len(batch_sizes))]


def build_irct_views(
    waveforms: torch.Tensor,
    labels: torch.Tensor,
    batch_sizes: Sequence[int],
    frontend: Callable[[torch.Tensor], torch.Tensor],
    aug_set: str,
    generator: torch.Generator | None = None,
    mix_extra: Sequence[int] = (1, 2),
    part_names: Sequence[str] = ("synthetic", "weak", "unlabeled"),
    net_pooling: int = 4,
    original_features: torch.Tensor | None = None,
    batch_generator: torch.Generator | None = None,
) -> IRCTViews:
    """Build IRCT's three views of a (B, L) batch made of parts of `batch_sizes`.

    `original_features` is `frontend(waveforms)` when the caller has it already (it is not recomputed).
    `batch_generator` (default: `generator`) draws the batch-level choices, the number of mixed clips and
    the augmentation of each part, so DDP ranks can share them; `generator` draws the per-clip ones.

    Per part (as the reference): hard mixup of 1 or 2 extra clips of the same part and one augmentation
    drawn from `aug_set`. Labels (B, C, label_frames) follow each view (mixed; rolled for a time shift).
    """
    batch_generator = generator if batch_generator is None else batch_generator
    views = {view: [] for view in VIEWS}
    view_labels = {view: [] for view in VIEWS}
    parts = []
    original = frontend(waveforms) if original_features is None else original_features
    for index, (rows, ratio) in enumerate(split_batch_parts(batch_sizes)):
        part_waves, part_labels = waveforms[rows], labels[rows]
        n_extra = int(mix_extra[int(torch.randint(len(mix_extra), (1,), generator=batch_generator))])
        mixed, local_partners = hard_mixup(part_waves, n_extra, generator)
        augmentation = sample_augmentation(aug_set, batch_generator)
        augmented, info = apply_augmentation(augmentation, part_waves, frontend, generator, net_pooling)
        views["original"].append(original[rows])
        views["mixup"].append(frontend(mixed))
        views["augmented"].append(augmented)
        view_labels["original"].append(part_labels)
        view_labels["mixup"].append(mix_labels(part_labels, local_partners))
        view_labels["augmented"].append(
            torch.roll(part_labels, info.shift_input_frames // net_pooling, dims=-1)
        )
        name = part_names[index] if index < len(part_names) else f"part{index}"
        parts.append(PartPlan(name, rows, ratio, [p + rows.start for p in local_partners], info))
    return IRCTViews(
        features={view: torch.cat(chunks) for view, chunks in views.items()},
        labels={view: torch.cat(chunks) for view, chunks in view_labels.items()},
        parts=parts,
    )


def choose_supervised_view(generator: torch.Generator | None = None) -> str:
    """The view whose predictions feed the supervised loss this step, uniformly among VIEWS."""
    return VIEWS[int(torch.randint(len(VIEWS), (1,), generator=generator))]
