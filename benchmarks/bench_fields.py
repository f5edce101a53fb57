"""Time to accuracy on static gradient fields: a GradNet against HNN at the same parameter budget.

For each field: HNN trains for its full budget (the protocol's steps and batch); the error it ends
with is the validation error of the weights it delivers (its best validation check). A GradNet
with the same budget then trains on the same data regime, validated at the same points every
``val_every`` steps, until its validation error is at or below HNN's; its time is the training time
up to that check. Times count training steps only (validations excluded, for both).

Because the machine is shared, a second estimate multiplies each model's step count by its median
step time measured interleaved with the other's (``time_pair``): columns ``ours_est``/``peer_est``.

Rows: ``ours`` (GradNet seconds to HNN's error), ``peer`` (HNN seconds for its full budget),
``ratio`` = ours / peer, target ≤ 0.5.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from benchmarks.harness import time_pair

TARGET_RATIO = 0.5

# (label, field, dim, budget, GradNet name and options, HNN options, data regime, learning rates)
CASES: list[dict[str, Any]] = [
    {
        "what": "PolyMax d=256: time to HNN's final error",
        "field": "polymax",
        "dim": 256,
        "ours": ("mgradnet-m", {"param_budget": 256 * 1024}),
        "peer": ("hnn", {"param_budget": 256 * 1024}),
        "train": {"mode": "fresh", "steps": 10_000, "batch_size": 100, "val_every": 250},
        "n_val": 2_000,
        "lr_ours": 1e-3,
        "lr_peer": 1e-3,
    },
    {
        "what": "convex-2d: time to HNN's final error",
        "field": "convex-2d",
        "dim": 2,
        "ours": ("mgradnet-c", {"width": 7, "activation": "tanh"}),
        "peer": ("hnn", {"param_budget": 100}),
        "train": {
            "mode": "fixed",
            "n_train": 100_000,
            "steps": 20_000,
            "batch_size": 1000,
            "val_every": 100,
        },
        "n_val": 10_000,
        "lr_ours": 5e-3,
        "lr_peer": 5e-3,
    },
]


def _step_time(model: torch.nn.Module, field, batch: int) -> Any:
    """A closure running one Adam step of ``model`` on a fixed batch (for interleaved timing)."""
    x = field.sample(batch, generator=torch.Generator().manual_seed(0)).float()
    y = field.grad(x.double()).float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()

    return step


def run_case(case: dict[str, Any], *, seed: int = 0) -> dict[str, Any]:
    """One row: HNN's full run, then the GradNet until it matches HNN's error."""
    import hamgrad.systems.fields  # noqa: F401
    from hamgrad.field_training import fit_gradient_field
    from hamgrad.models import build_model, count_params
    from hamgrad.systems import get_system

    field = get_system(
        case["field"], **({"dim": case["dim"]} if case["field"] == "polymax" else {})
    )
    x_val = field.sample(case["n_val"], generator=torch.Generator().manual_seed(10_000 + seed))
    peer_name, peer_opts = case["peer"]
    ours_name, ours_opts = case["ours"]
    peer = build_model(peer_name, case["dim"], seed=seed, **peer_opts)
    ours = build_model(ours_name, case["dim"], seed=seed, **ours_opts)
    common = {"x_val": x_val, "seed": seed, "progress": False, **case["train"]}

    _, h_peer = fit_gradient_field(peer, field.grad, field.sample, lr=case["lr_peer"], **common)
    peer_db = h_peer["best_val_db"]
    peer_seconds = h_peer["train_time"][-1]

    reached: dict[str, Any] = {}

    def stop_at_peer_error(record: dict[str, Any]) -> bool:
        if record["val_db"] <= peer_db:
            reached.update(record)
            return True
        return False

    _, h_ours = fit_gradient_field(
        ours, field.grad, field.sample, lr=case["lr_ours"], callback=stop_at_peer_error, **common
    )
    met_error = bool(reached)
    ours_seconds = reached["train_time"] if met_error else h_ours["train_time"][-1]
    ours_steps = reached["step"] if met_error else h_ours["steps_done"]

    t_ours, t_peer = time_pair(
        _step_time(ours, field, case["train"]["batch_size"]),
        _step_time(peer, field, case["train"]["batch_size"]),
        repeat=30,
        warmup=3,
    )
    ratio = ours_seconds / peer_seconds if met_error else math.inf
    steps_peer = h_peer["steps_done"]
    train = case["train"]
    command = ".venv/bin/python -m benchmarks fields"
    return {
        "what": case["what"],
        "ours": round(ours_seconds, 2) if met_error else None,
        "peer": round(peer_seconds, 2),
        "ratio": round(ratio, 3) if met_error else None,
        "target": f"<= {TARGET_RATIO}",
        "met": bool(met_error and ratio <= TARGET_RATIO),
        "command": command,
        "ours_model": f"{ours_name} ({count_params(ours):,} params, lr {case['lr_ours']:g})",
        "peer_model": f"{peer_name} ({count_params(peer):,} params, lr {case['lr_peer']:g})",
        "peer_error_db": round(peer_db, 3),
        "ours_error_db_at_stop": round(reached["val_db"], 3) if met_error else None,
        "ours_best_error_db": round(min(h_ours["val_db"]), 3),
        "ours_steps": ours_steps,
        "peer_steps": steps_peer,
        "steps_ratio": round(ours_steps / steps_peer, 4),
        "step_ms_ours": round(1e3 * t_ours, 3),
        "step_ms_peer": round(1e3 * t_peer, 3),
        "ours_est": round(ours_steps * t_ours, 2),
        "peer_est": round(steps_peer * t_peer, 2),
        "ratio_est": round(ours_steps * t_ours / (steps_peer * t_peer), 3),
        "data": f"{train['mode']}, batch {train['batch_size']}, {steps_peer} steps",
    }


def run() -> list[dict]:
    rows = []
    for case in CASES:
        start = time.perf_counter()
        row = run_case(case)
        row["bench_seconds"] = round(time.perf_counter() - start, 1)
        print(
            f"  {row['what']}: ours {row['ours']} s vs HNN {row['peer']} s "
            f"(HNN {row['peer_error_db']} dB; steps {row['ours_steps']}/{row['peer_steps']})",
            flush=True,
        )
        rows.append(row)
    return rows
