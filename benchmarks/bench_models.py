"""Training-step time of GradNet-C and GradNet-M against HNN at equal parameter count.

One training step = forward + backward of an MSE loss between the model's field (∇H) and a
target, batch 200 (for HNN the step includes the double backward through its autograd
gradient). HNN has its published size (two hidden layers of 200, tanh); the GradNets get the
largest width whose parameter count fits HNN's (``param_budget = count_params(hnn)``).
GradNet-C: L = 4, wtanh; GradNet-M: K = 4, wsoftmax (general variants).

Three implementations of the same network are timed: the default (``fused=True``: the compiled
one-pass kernels of :mod:`hamgrad.models.native` where this machine can build them), the fused
torch kernels alone (``HAMGRAD_NATIVE=0``) and the eager published equations (``fused=False``).
The targets apply to the default.

Each ratio (GradNet / HNN) is timed side by side with ``time_pair`` (calls interleaved), in
several rounds; the reported figure is the median over rounds. Torch runs single-threaded so the
figures do not depend on what else the shared machine is doing with its other cores. The eager
rows (``fused=False``: the published equations in plain torch ops) are for reference.
"""

from __future__ import annotations

import os
import statistics

import torch

from benchmarks.harness import time_pair
from hamgrad.models import build_model, count_params, native

BATCH = 200
DIMS = (8, 512)
TARGETS = {
    ("gradnet-c", 8): 2.0,
    ("gradnet-m", 8): 2.0,
    ("gradnet-c", 512): 1.0,
    ("gradnet-m", 512): 0.7,
}
ROUNDS = 7
REPEAT = 25
COMMAND = ".venv/bin/python -m benchmarks models"
LABEL = {"gradnet-c": "GradNet-C", "gradnet-m": "GradNet-M"}
LIBRARY = {"gradnet-c": "cascade_native", "gradnet-m": "modular_native"}


def _train_step(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor):
    params = list(model.parameters())

    def step() -> None:
        for p in params:
            p.grad = None
        loss = torch.mean((model(x) - target) ** 2)
        loss.backward()

    return step


def _ratio(ours, peer) -> tuple[float, float, float]:
    """Median over rounds of (t_ours, t_peer, t_ours / t_peer)."""
    ratios, t_o, t_p = [], [], []
    for _ in range(ROUNDS):
        a, b = time_pair(ours, peer, repeat=REPEAT, warmup=3)
        ratios.append(a / b)
        t_o.append(a)
        t_p.append(b)
    return statistics.median(t_o), statistics.median(t_p), statistics.median(ratios)


#: (label suffix, fused option, HAMGRAD_NATIVE) of the implementations timed.
VARIANTS = (
    ("", True, "1"),
    (" (fused torch kernels, HAMGRAD_NATIVE=0)", True, "0"),
    (" (eager reference)", False, "1"),
)


def run() -> list[dict]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    saved_env = os.environ.get("HAMGRAD_NATIVE")
    rows = []
    try:
        for dim in DIMS:
            gen = torch.Generator().manual_seed(dim)
            x = torch.randn(BATCH, dim, generator=gen)
            target = torch.randn(BATCH, dim, generator=gen)
            hnn = build_model("hnn", dim, width=200, seed=0)
            budget = count_params(hnn)
            peer = _train_step(hnn, x, target)
            for name in ("gradnet-c", "gradnet-m"):
                for suffix, fused, env in VARIANTS:
                    os.environ["HAMGRAD_NATIVE"] = env
                    default = suffix == ""
                    model = build_model(name, dim, param_budget=budget, fused=fused, seed=0)
                    t_ours, t_peer, ratio = _ratio(_train_step(model, x, target), peer)
                    target_ratio = TARGETS[(name, dim)]
                    rows.append(
                        {
                            "what": f"{LABEL[name]} train step / HNN, dim {dim}{suffix}",
                            "ours": round(t_ours * 1e3, 3),
                            "peer": round(t_peer * 1e3, 3),
                            "ratio": round(ratio, 3),
                            "target": f"<= {target_ratio}x" if default else "",
                            "met": (ratio <= target_ratio) if default else None,
                            "command": COMMAND,
                            "unit": "ms per step",
                            "dim": dim,
                            "batch": BATCH,
                            "width": model.width,
                            "params": count_params(model),
                            "hnn_params": budget,
                            "fused": fused,
                            "compiled_kernels": fused and native.load(LIBRARY[name]) is not None,
                            "native_status": native.status(),
                            "torch_threads": 1,
                        }
                    )
    finally:
        torch.set_num_threads(threads)
        if saved_env is None:
            os.environ.pop("HAMGRAD_NATIVE", None)
        else:
            os.environ["HAMGRAD_NATIVE"] = saved_env
    return rows
