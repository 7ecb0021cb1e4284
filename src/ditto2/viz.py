"""Pictures people look at instead of reading numbers: mel grids (PNG files and TensorBoard images)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def mel_grid_figure(mels: Sequence[np.ndarray], titles: Optional[Sequence[str]] = None, cols: int = 4,
                    vmin: float = -2.0, vmax: float = 2.0):
    """mels: normalized (n_mels, frames) arrays, low frequencies at the bottom."""
    n = len(mels)
    cols = min(cols, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 1.9 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(np.asarray(mels[i]), origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax)
            if titles:
                ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    return fig


def figure_to_array(fig) -> np.ndarray:
    """(H, W, 3) uint8, for TensorBoard's add_image(dataformats="HWC")."""
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return img


def save_figure(fig, path: str | Path, close: bool = True) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    if close:
        plt.close(fig)


def show_mel(ax, mel: np.ndarray, title: Optional[str] = None) -> None:
    """A normalized (n_mels, frames) mel on ``ax``, low frequencies at the bottom."""
    ax.imshow(np.asarray(mel), origin="lower", aspect="auto", cmap="magma", vmin=-2, vmax=2)
    if title:
        ax.set_title(title, fontsize=8)
    ax.axis("off")


def finish(fig, title: str):
    """The title of a per-item report figure, laid out."""
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def mel_figure(mel: np.ndarray, title: str):
    fig, ax = plt.subplots(figsize=(7, 2.6))
    show_mel(ax, mel)
    return finish(fig, title)


def series_figure(target: np.ndarray, achieved: np.ndarray, target_label: str, achieved_label: str, ylabel: str,
                  title: str, style: tuple = ("-", "-")):
    """Target vs achieved per frame (intensity curves, melody pitch classes)."""
    fig, ax = plt.subplots(figsize=(7, 2.6))
    x = np.arange(len(target))
    ax.plot(x, target, style[0], label=target_label, **({"lw": 2} if style[0] == "-" else {"ms": 3}))
    ax.plot(x, achieved, style[1], label=achieved_label, **({} if style[1] == "-" else {"ms": 2}))
    ax.set_ylabel(ylabel)
    ax.set_xlabel("frame")
    ax.legend(fontsize=7)
    return finish(fig, title)
