"""Figures of evaluations (matplotlib, Agg backend: no display needed); each function writes a PNG.

- :func:`plot_phase_portraits`: true vs predicted trajectories in phase space (q_0, p_0) and, with
  two or more degrees of freedom, in configuration space (q_0, q_1).
- :func:`plot_energy_error`: relative energy error |H(x̂_t) − H(x_0)|/|H(x_0)| vs time, log scale,
  median over trajectories with the 25–75 % band, one curve per model.
- :func:`plot_state_error`: normalised state error ‖x̂_t − x_t‖²/mean‖x_t‖² vs time, log scale.
- :func:`plot_bars`: one scalar per model (e.g. mean PSNR).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "plot_phase_portraits",
    "plot_energy_error",
    "plot_state_error",
    "plot_bars",
    "plot_loss_curves",
]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    from hamgrad.atomic import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_phase_portraits(
    true: np.ndarray,
    preds: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    *,
    n_show: int = 4,
    title: str = "",
) -> Path:
    """True (black) vs predicted trajectories (one colour per model); arrays (B, T+1, 2n)."""
    plt = _pyplot()
    true = np.asarray(true)
    n = true.shape[-1] // 2
    panels = [("q_0", "p_0", 0, n)]
    if n >= 2:
        panels.append(("q_0", "q_1", 0, 1))
    k = min(n_show, true.shape[0])
    fig, axes = plt.subplots(len(panels), k, figsize=(3.2 * k, 3.0 * len(panels)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, (xl, yl, i, j) in enumerate(panels):
        for b in range(k):
            ax = axes[row][b]
            ax.plot(true[b, :, i], true[b, :, j], color="black", lw=2.0, label="true")
            for c, (name, pred) in enumerate(preds.items()):
                pred = np.asarray(pred)
                ax.plot(
                    pred[b, :, i],
                    pred[b, :, j],
                    color=colours[c % len(colours)],
                    lw=1.0,
                    ls="--",
                    label=name,
                )
            ax.set_xlabel(xl)
            ax.set_ylabel(yl)
            if row == 0:
                ax.set_title(f"trajectory {b}")
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _median_band(ax, t: np.ndarray, values: np.ndarray, label: str, colour: str) -> None:
    values = np.atleast_2d(values)
    floor = np.finfo(np.float64).tiny
    values = np.maximum(values, floor)
    med = np.median(values, axis=0)
    lo, hi = np.percentile(values, [25, 75], axis=0)
    ax.plot(t, med, color=colour, lw=1.4, label=label)
    ax.fill_between(t, lo, hi, color=colour, alpha=0.2, lw=0)


def _error_plot(
    t: np.ndarray,
    series: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    ylabel: str,
    title: str,
) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    t = np.asarray(t)
    for c, (name, values) in enumerate(series.items()):
        values = np.asarray(values)
        # the first point is exactly zero for a rollout started from the true state
        _median_band(ax, t[1:], values[..., 1:], name, colours[c % len(colours)])
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_energy_error(
    t: np.ndarray,
    errors: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    *,
    title: str = "relative energy error (median, 25-75%)",
) -> Path:
    """Relative energy error vs time on a log scale; ``errors[name]`` has shape (B, T+1)."""
    return _error_plot(t, errors, path, "|H(x̂_t) − H(x_0)| / |H(x_0)|", title)


def plot_state_error(
    t: np.ndarray,
    errors: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    *,
    title: str = "state error (median, 25-75%)",
) -> Path:
    """Normalised state error vs time on a log scale; ``errors[name]`` has shape (B, T+1)."""
    return _error_plot(t, errors, path, "‖x̂_t − x_t‖² / mean ‖x_t‖²", title)


def plot_bars(
    values: Mapping[str, float], path: str | os.PathLike, *, ylabel: str, title: str = ""
) -> Path:
    """One bar per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(values), 3.6))
    names = list(values)
    ax.bar(range(len(names)), [values[k] for k in names], color="tab:blue")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_loss_curves(
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    path: str | os.PathLike,
    *,
    title: str = "training loss",
) -> Path:
    """Training (solid) and validation (dotted) loss vs step; one colour per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, (name, rows) in enumerate(histories.items()):
        colour = colours[c % len(colours)]
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r["loss"] for r in rows], color=colour, label=name)
        val = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
        if val:
            ax.plot(*zip(*val, strict=True), color=colour, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, path)
