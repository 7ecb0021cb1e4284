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
