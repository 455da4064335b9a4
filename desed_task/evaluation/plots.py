"""PNG plots of PSD-ROC curves (overall and per class), drawn with matplotlib's Agg backend."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from desed_task.evaluation.psds import PSDSResult  # noqa: E402


def save_psd_roc_plot(result: PSDSResult, out_dir, prefix: str | None = None) -> list[Path]:
    """Write `<prefix>_psd_roc.png` (overall eTPR vs eFPR) and `<prefix>_psd_roc_per_class.png`; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = prefix or f"{result.scenario.name}_{result.flavour}"
    max_efpr = result.scenario.max_efpr
    paths = []

    figure, axes = plt.subplots(figsize=(6, 4.5))
    x, y = result.roc
    axes.step(x, y, where="post", label=f"{result.scenario.name.upper()} = {result.value:.4f}")
    axes.set(xlim=(0, max_efpr), ylim=(0, 1.02), xlabel="eFPR (per hour)", ylabel="eTPR",
             title=f"PSD-ROC {result.scenario.name.upper()} ({result.flavour})")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    paths.append(out_dir / f"{prefix}_psd_roc.png")
    figure.tight_layout()
    figure.savefig(paths[-1], dpi=100)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7.5, 5))
    for name, (x, y) in sorted(result.per_class_rocs.items()):
        axes.step(x, y, where="post", label=f"{name} ({result.per_class.get(name, float('nan')):.3f})")
    axes.set(xlim=(0, max_efpr), ylim=(0, 1.02), xlabel="eFPR (per hour)", ylabel="TPR",
             title=f"Per-class PSD-ROC {result.scenario.name.upper()} ({result.flavour})")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=7)
    paths.append(out_dir / f"{prefix}_psd_roc_per_class.png")
    figure.tight_layout()
    figure.savefig(paths[-1], dpi=100)
    plt.close(figure)
    return paths
