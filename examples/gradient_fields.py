"""The gradient-field benchmark of the Gradient Networks paper, in small.

Fits mGradNet-C and mGradNet-M (about 100 parameters each, the paper's 2-D sizes) to the convex
2-D field ∇F, F(x1, x2) = x1⁴ + x1²/2 + x1·x2/2 + 3x2²/2 − x2³/3 on [0, 1]², and GradNet-C/M to the
non-convex field, with the paper's protocol shortened (20,000 instead of 100,000 points, 4000 steps
of 1000 instead of 200 epochs, a cosine learning-rate schedule) to run in about a minute. Prints the field error in dB (10·log10 mean ‖f(x) − ∇F(x)‖² on a 100×100 grid) next to the
published figures (200 epochs of 100,000 points). The full benchmark is ``hamgrad fields``.

    python examples/gradient_fields.py [--steps 4000] [--n-train 20000]
"""

from __future__ import annotations

import argparse
import time

import torch

from hamgrad.metrics import field_error_db
from hamgrad.models import build_model, count_params
from hamgrad.systems import get_system
from hamgrad.train import fit_gradient_field

# (field, model, options, published dB from the paper)
CASES = [
    ("convex-2d", "mgradnet-c", {"activation": "tanh"}, -49.05),
    ("convex-2d", "mgradnet-m", {"activation": "softmax"}, -48.65),
    ("nonconvex-2d", "gradnet-c", {"activation": "tanh"}, -42.17),
    ("nonconvex-2d", "gradnet-m", {"activation": "softmax"}, -39.53),
]


def grid(n: int = 100) -> torch.Tensor:
    """The n×n evaluation grid of [0, 1]², shape (n², 2), float64."""
    u = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    a, b = torch.meshgrid(u, u, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000, help="optimisation steps of 1000 points")
    parser.add_argument("--n-train", type=int, default=20_000, help="training points")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small models: one thread is fastest
    batch = 1000
    x_grid = grid()
    print(f"{'field':<13} {'model':<11} {'params':>6} {'error dB':>9} {'published':>9}  time")
    for field_name, model_name, options, published in CASES:
        field = get_system(field_name)
        torch.manual_seed(args.seed)
        net = build_model(model_name, 2, width=7, **options)
        t0 = time.perf_counter()
        net, _ = fit_gradient_field(
            net, field.grad, field.sample, steps=args.steps, batch_size=batch, lr=1e-2,
            schedule="cosine", mode="fixed", n_train=args.n_train, n_val=2000, seed=args.seed,
            dtype=torch.float64, progress=False,
        )  # fmt: skip
        with torch.no_grad():
            err = field_error_db(net(x_grid), field.grad(x_grid))
        print(
            f"{field_name:<13} {model_name:<11} {count_params(net):>6} {err:>9.2f} "
            f"{published:>9.2f}  {time.perf_counter() - t0:.0f} s"
        )
    print(
        "(published: 200 epochs of 100,000 points, mean of 5 trials; "
        "this run is shorter, so expect a higher error)"
    )


if __name__ == "__main__":
    main()
