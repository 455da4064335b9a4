"""Procedural, vectorised synthesis of the ten DESED event classes and of room backgrounds.

Each generator returns `n` samples at `sr` with unit RMS, with a timbre chosen to be recognisable
(and distinct between classes) on a log-mel spectrogram: tonal alarms and bells, formant speech,
decaying inharmonic dish clinks, barks, gliding meows, bubbly water, crackling frying, buzzy shavers,
modulated blender motors and steady vacuum whine + hiss.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

VOWEL_FORMANTS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480],
                           [570, 840, 2410], [660, 1720, 2410]], dtype=float)


def _band(x: np.ndarray, sr: int, low: float | None, high: float | None, order: int = 2) -> np.ndarray:
    nyquist = sr / 2
    if low is not None and high is not None and high < 0.95 * nyquist:
        sos = butter(order, [low / nyquist, high / nyquist], btype="band", output="sos")
    elif low is not None:
        sos = butter(order, min(low / nyquist, 0.9), btype="high", output="sos")
    else:
        sos = butter(order, min(high / nyquist, 0.95), btype="low", output="sos")
    return sosfilt(sos, x)


def _resonator(x: np.ndarray, sr: int, freq: float, bandwidth: float) -> np.ndarray:
    radius = np.exp(-np.pi * bandwidth / sr)
    theta = 2 * np.pi * freq / sr
    return lfilter([1 - radius], [1, -2 * radius * np.cos(theta), radius ** 2], x)


def _harmonics(phase: np.ndarray, weights, f0: np.ndarray, sr: int) -> np.ndarray:
    """Sum of weights[k-1] * sin(2*pi*k*phase) (phase in cycles), muting harmonics above 0.45*sr."""
    out = np.zeros_like(phase)
    for k, weight in enumerate(weights, start=1):
        if weight:
            out += weight * ((k * f0) < 0.45 * sr) * np.sin(2 * np.pi * k * phase)
    return out


def _pulse_bursts(n: int, sr: int, rng, burst_len: tuple[float, float], gap: tuple[float, float]):
    """Random (start, length) bursts in samples that fill [0, n)."""
    bursts, position = [], int(rng.uniform(0, 0.05) * sr)
    while position < n:
        length = int(rng.uniform(*burst_len) * sr)
        bursts.append((position, min(length, n - position)))
        position += length + int(rng.uniform(*gap) * sr)
    return [b for b in bursts if b[1] > sr * 0.02] or [(0, n)]


def alarm_bell_ringing(n, sr, rng):
    t = np.arange(n) / sr
    f0 = rng.uniform(650, 1500)
    if rng.random() < 0.5:  # electronic beeping alarm: gated tone with odd partials and tremolo
        gate_rate, duty = rng.uniform(2, 6), rng.uniform(0.35, 0.7)
        gate = ((t * gate_rate) % 1 < duty).astype(float)
        gate = np.convolve(gate, np.hanning(int(0.004 * sr) + 1) / (0.002 * sr), mode="same")
        tone = _harmonics(f0 * t, [1, 0, 0.45, 0, 0.2], np.full(n, f0), sr)
        signal = tone * gate * (1 + 0.4 * np.sin(2 * np.pi * rng.uniform(15, 35) * t))
    else:  # mechanical bell: inharmonic partials re-struck at the hammer rate, ringing decay
        strike_rate, tau = rng.uniform(8, 18), rng.uniform(0.03, 0.08)
        since_strike = (t * strike_rate % 1) / strike_rate
        envelope = 0.35 + np.exp(-since_strike / tau)
        ratios = np.array([1.0, 2.32, 4.25, 5.4])
        signal = sum(np.sin(2 * np.pi * f0 * r * t + rng.uniform(0, 6.28)) / (1 + i)
                     for i, r in enumerate(ratios) if f0 * r < 0.45 * sr) * envelope
    return signal


def blender(n, sr, rng):
    t = np.arange(n) / sr
    speed = rng.uniform(150, 260) * (1 - 0.35 * np.exp(-t / 0.4)) * (1 + 0.03 * np.sin(2 * np.pi * 0.7 * t))
    phase = np.cumsum(speed) / sr
    hum = _harmonics(phase, 1 / np.arange(1, 16), speed, sr)
    noise = _band(rng.standard_normal(n), sr, 300, 3500)
    chop = 1 + 0.6 * np.sin(2 * np.pi * rng.uniform(12, 25) * t) * (rng.random() < 0.7)
    return (0.6 * hum / (np.std(hum) + 1e-9) + noise / (np.std(noise) + 1e-9)) * chop


def vacuum_cleaner(n, sr, rng):
    t = np.arange(n) / sr
    hiss = _band(rng.standard_normal(n), sr, 1200, None, order=2)
    rumble = _band(rng.standard_normal(n), sr, None, 250)
    whine_freq = rng.uniform(900, 2400)
    whine = np.sin(2 * np.pi * whine_freq * t) + 0.5 * np.sin(2 * np.pi * 2 * whine_freq * t)
    return hiss / np.std(hiss) + 0.5 * rumble / (np.std(rumble) + 1e-9) + 0.25 * whine


def speech(n, sr, rng):
    t = np.arange(n) / sr
    base = rng.uniform(95, 240)
    f0 = base * (1 + 0.12 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 6.28))) * (1 - 0.1 * t / max(t[-1], 1e-3))
    phase = np.cumsum(f0) / sr
    pulses = np.diff(np.floor(phase), prepend=0.0)
    source = lfilter([1], [1, -0.9], lfilter([1], [1, -0.9], pulses)) + 0.02 * rng.standard_normal(n)
    out = np.zeros(n)
    for start, length in _pulse_bursts(n, sr, rng, (0.12, 0.32), (0.03, 0.12)):
        segment = source[start:start + length]
        f1, f2, f3 = VOWEL_FORMANTS[rng.integers(len(VOWEL_FORMANTS))] * rng.uniform(0.9, 1.15)
        voiced = (_resonator(segment, sr, f1, 90) + 0.7 * _resonator(segment, sr, f2, 120)
                  + 0.3 * _resonator(segment, sr, f3, 160))
        voiced *= np.sin(np.pi * np.arange(length) / length) ** 0.7
        out[start:start + length] += voiced / (np.std(voiced) + 1e-9)
        if rng.random() < 0.5:  # fricative consonant before the vowel
            fric_len = min(int(rng.uniform(0.03, 0.07) * sr), length)
            fric = _band(rng.standard_normal(fric_len), sr, rng.uniform(2500, 4000), None)
            out[start:start + fric_len] += 0.4 * fric * np.hanning(fric_len) / (np.std(fric) + 1e-9)
    return out


def dishes(n, sr, rng):
    out = np.zeros(n)
    n_clinks = max(1, int(rng.integers(1, 4)))
    for _ in range(n_clinks):
        start = int(rng.uniform(0, 0.7) * n) if n_clinks > 1 else 0
        length = n - start
        t = np.arange(length) / sr
        tau = rng.uniform(0.03, 0.1)
        freqs = rng.uniform(1800, min(7000, 0.42 * sr), size=4)
        clink = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) * np.exp(-t / (tau * rng.uniform(0.5, 1.5)))
                    for f in freqs)
        out[start:] += clink * rng.uniform(0.5, 1.0)
    return out


def dog(n, sr, rng):
    out = np.zeros(n)
    base = rng.uniform(350, 750)
    for start, length in _pulse_bursts(n, sr, rng, (0.1, 0.22), (0.12, 0.35)):
        t = np.arange(length) / sr
        f0 = base * (1.15 - 0.4 * t / t[-1])
        phase = np.cumsum(f0) / sr
        harmonic = _harmonics(phase, [1, 0.8, 0.6, 0.45, 0.3, 0.2], f0, sr)
        noisy = harmonic * (1 + 0.5 * rng.standard_normal(length)) + 0.5 * _band(rng.standard_normal(length), sr, 500, 3000)
        envelope = np.minimum(t / 0.008, 1) * np.exp(-t / (0.4 * t[-1] + 1e-3))
        out[start:start + length] += noisy * envelope
    return out


def cat(n, sr, rng):
    t = np.arange(n) / sr
    progress = t / max(t[-1], 1e-3)
    f0 = rng.uniform(420, 650) * (1 + rng.uniform(0.3, 0.6) * np.sin(np.pi * progress ** rng.uniform(0.6, 1.2)))
    phase = np.cumsum(f0) / sr
    brightness = 0.3 + 0.6 * np.sin(np.pi * progress)
    out = np.zeros(n)
    for k in range(1, 9):
        out += (k * f0 < 0.45 * sr) * brightness ** (k - 1) * np.sin(2 * np.pi * k * phase)
    envelope = np.sin(np.pi * progress) ** 0.5
    return out * envelope * (1 + 0.15 * np.sin(2 * np.pi * 6 * t))


def running_water(n, sr, rng):
    noise = _band(rng.standard_normal(n), sr, 400, 4000)
    flow = 1 + 0.3 * _band(rng.standard_normal(n), sr, None, 8) * 10
    out = 0.6 * noise / (np.std(noise) + 1e-9) * flow
    n_bubbles = int(rng.uniform(30, 60) * n / sr)
    starts = rng.integers(0, max(n - 1, 1), size=n_bubbles)
    for start, freq, length in zip(starts, rng.uniform(500, 2500, n_bubbles), rng.uniform(0.006, 0.025, n_bubbles)):
        length = min(int(length * sr), n - start)
        t = np.arange(length) / sr
        out[start:start + length] += 1.5 * np.sin(2 * np.pi * freq * t * (1 + 20 * t)) * np.exp(-t / (length / sr / 3))
    return out


def frying(n, sr, rng):
    rate = rng.uniform(120, 300)
    impulses = (rng.random(n) < rate / sr) * rng.pareto(2.5, n)
    crackle = _band(lfilter([1], [1, -0.6], impulses), sr, 2000, None)
    hiss = _band(rng.standard_normal(n), sr, 3000, None)
    return crackle / (np.std(crackle) + 1e-9) + 0.35 * hiss / (np.std(hiss) + 1e-9)


def electric_shaver_toothbrush(n, sr, rng):
    t = np.arange(n) / sr
    f0 = rng.uniform(110, 260) * (1 + 0.01 * np.sin(2 * np.pi * 3 * t))
    phase = np.cumsum(f0) / sr
    pulses = (phase % 1 < 0.12).astype(float) - 0.12
    buzz = _band(pulses, sr, rng.uniform(1500, 2500), min(7000, 0.45 * sr))
    return buzz / (np.std(buzz) + 1e-9) * (1 + 0.2 * np.sin(2 * np.pi * f0 / 2 * t))


GENERATORS = {
    "Alarm_bell_ringing": alarm_bell_ringing,
    "Blender": blender,
    "Cat": cat,
    "Dishes": dishes,
    "Dog": dog,
    "Electric_shaver_toothbrush": electric_shaver_toothbrush,
    "Frying": frying,
    "Running_water": running_water,
    "Speech": speech,
    "Vacuum_cleaner": vacuum_cleaner,
}


def synthesize_event(label: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of class `label`, unit RMS over the event, with 5 ms fades against clicks."""
    signal = GENERATORS[label](n, sr, rng)
    signal = signal / (np.sqrt(np.mean(signal ** 2)) + 1e-9)
    fade = min(int(0.005 * sr), n // 2)
    if fade > 0:
        ramp = np.linspace(0, 1, fade)
        signal[:fade] *= ramp
        signal[n - fade:] *= ramp[::-1]
    return signal


def background(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS room background: pink + brown noise and, sometimes, mains hum with harmonics."""
    white = rng.standard_normal(n)
    pink = lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                   [1, -2.494956002, 2.017265875, -0.522189400], white)
    brown = lfilter([1], [1, -0.995], rng.standard_normal(n))
    out = pink / np.std(pink) + rng.uniform(0.1, 0.6) * brown / np.std(brown)
    if rng.random() < 0.4:
        t = np.arange(n) / sr
        mains = rng.choice([50.0, 60.0])
        out += rng.uniform(0.2, 0.8) * sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3))
    return out / np.std(out)
