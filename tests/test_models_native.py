"""The compiled kernels (``hamgrad.models.native``): each agrees with the literal equations to
round-off for every small ``d`` it specialises, threads split the work without changing the
result, a missing compiler or ``HAMGRAD_NATIVE=0`` falls back to the torch kernels, and a
process forked after the thread pool started still runs them."""

from __future__ import annotations

import multiprocessing
import os

import pytest
import torch

from hamgrad.models import build_model, cascade_native, modular_native, native

F64 = torch.float64

needs_compiler = pytest.mark.skipif(
    not cascade_native.skinny_available(torch.zeros(1, 1)),
    reason="no C compiler: the compiled kernels are unavailable here",
)


def _close(a, b, rtol):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max()) <= rtol * max(float(b.abs().max()), 1e-300)


def _gradients(model, x, target):
    """Loss, input gradient and parameter gradients of an MSE loss (the training step)."""
    x = x.clone().requires_grad_(True)
    loss = ((model(x) - target) ** 2).mean()
    return (loss, *torch.autograd.grad(loss, [x, *model.parameters()]))


def _compare(name, dim, width, dtype, rtol, n=13, **options):
    fused = build_model(name, dim, width=width, seed=1, dtype=dtype, fused=True, **options)
    eager = build_model(name, dim, width=width, seed=1, dtype=dtype, fused=False, **options)
    gen = torch.Generator().manual_seed(dim)
    x = torch.randn(n, dim, generator=gen, dtype=dtype)
    target = torch.randn(n, dim, generator=gen, dtype=dtype)
    for a, b in zip(_gradients(fused, x, target), _gradients(eager, x, target), strict=True):
        assert _close(a, b, rtol), (name, dim)


@needs_compiler
@pytest.mark.parametrize("dim", list(range(1, 18)) + [31])
@pytest.mark.parametrize("name", ["gradnet-c", "mgradnet-m", "gradnet-m"])
def test_compiled_small_d_kernels_match_the_equations(name, dim):
    """Every specialised ``d`` (2, 4, 8) and the generic loop (others, up to the largest skinny
    ``d`` = 31), float64: loss, input and parameter gradients to 1e-10."""
    _compare(name, dim, 21, F64, 1e-10)


@needs_compiler
@pytest.mark.parametrize("width", [3, 7, 16, 17])
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("name", ["gradnet-c", "mgradnet-c", "mgradnet-m", "gradnet-m"])
def test_narrow_row_vectorised_kernels_match_the_equations(name, dim, width):
    """Widths up to 16 per module/layer take the loops over blocks of 32 rows (17 the per-row
    loops): batches shorter than, across and past a block, float64 to 1e-10."""
    for n in (13, 33, 70):
        _compare(name, dim, width, F64, 1e-10, n=n)


@needs_compiler
@pytest.mark.parametrize("name", ["gradnet-c", "mgradnet-m"])
def test_narrow_kernels_in_float32(name, dtype, tol):
    """The 2-D benchmarks' models (h = 7), float32 and float64 against float64 eager."""
    _compare(name, 2, 7, dtype, tol, n=100)


@needs_compiler
@pytest.mark.parametrize("name", ["gradnet-c", "gradnet-m"])
def test_compiled_kernels_in_float32(name, dtype, tol):
    """Float32 against float64 eager, and float64 against float64 eager (matching tolerances)."""
    _compare(name, 8, 300, dtype, tol)


@needs_compiler
def test_cascade_columns_past_one_block_and_wide_d():
    """Widths across the C loops' column blocks (256), and d >= 32 (the one-pass core behind
    the BLAS products)."""
    for width in (255, 256, 257, 600):
        _compare("mgradnet-c", 3, width, F64, 1e-10)
    _compare("gradnet-c", 40, 300, F64, 1e-10)
    _compare("gradnet-m", 40, 30, F64, 1e-10, activation="wtanh")


@needs_compiler
@pytest.mark.parametrize(
    "name, dim, width, n",
    [
        ("gradnet-c", 8, 700, 256),
        ("gradnet-m", 8, 700, 256),
        ("mgradnet-m", 8, 700, 256),
        ("gradnet-c", 40, 700, 256),
        ("gradnet-c", 2, 7, 10_000),  # the narrow loops
        ("mgradnet-m", 2, 7, 3_000),
    ],
)
def test_threads_split_the_work_without_changing_the_result(name, dim, width, n):
    """Two threads give the one-thread result to round-off: rows split (small d) or columns
    split (the one-pass core behind the products, d = 40)."""
    model = build_model(name, dim, width=width, seed=0, dtype=F64)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=gen, dtype=F64)  # N·h above the parallel threshold
    target = torch.randn(n, dim, generator=gen, dtype=F64)
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        units = width * getattr(model, "n_modules", 1)
        assert native.thread_count(n, units) == threads  # the split is really exercised
        results.append(_gradients(model, x, target))
    torch.set_num_threads(1)
    for a, b in zip(*results, strict=True):
        assert _close(a, b, 1e-12)


@needs_compiler
@pytest.mark.parametrize("width", [9, 24])  # the narrow loops, the per-row loops
def test_saturated_softmax_takes_the_two_exponential_path(width, dtype, tol):
    """A module whose pre-activations spread beyond the reciprocal limit: still finite and right."""
    fused = build_model("gradnet-m", 4, width=width, seed=5, dtype=dtype, fused=True)
    eager = build_model("gradnet-m", 4, width=width, seed=5, dtype=F64, fused=False)
    with torch.no_grad():
        for model in (fused, eager):
            model.weight.mul_(400.0)
    x = torch.randn(5, 4, dtype=F64, generator=torch.Generator().manual_seed(1))  # eager: float64
    with torch.no_grad():  # the pre-activations u_k = sp(β_k) (W_k x + b_k), (N, K, h)
        u = torch.nn.functional.softplus(eager.beta)[:, None] * (
            torch.einsum("khd,nd->nkh", eager.weight, x) + eager.bias
        )
    spread = (u.amax(-1) - u.amin(-1)).max()
    assert spread > modular_native.SPREAD_LIMIT[F64]
    out_f, out_e = fused(x.to(dtype)), eager(x)
    assert torch.isfinite(out_f).all()
    assert _close(out_f.double(), out_e, tol)


@needs_compiler
@pytest.mark.parametrize("name", ["gradnet-c", "gradnet-m"])
def test_non_finite_values_propagate(name):
    """A NaN in the input or in a parameter gives a non-finite output, never a finite number
    (the loops are built with -ffast-math: a float clamp inside exp once turned NaNs into
    finite values)."""
    model = build_model(name, 4, width=64, seed=0, fused=True)
    x = torch.randn(70, 4)
    x[3, 1] = float("nan")
    out = model(x)
    assert not torch.isfinite(out[3]).all()
    assert torch.isfinite(out[[0, 1, 2, 4]]).all()
    with torch.no_grad():
        model.weight.view(-1)[0] = float("inf")
    assert not torch.isfinite(model(torch.randn(70, 4))).all()


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("HAMGRAD_NATIVE", "0")
    assert native.load("cascade_native") is None
    assert not cascade_native.skinny_available(torch.zeros(2, 3))
    assert cascade_native.core_for(torch.zeros(2, 3)).__name__ == "CascadeCore"
    _compare("gradnet-c", 3, 30, F64, 1e-10)  # the torch kernels run instead


def test_missing_compiler_falls_back_and_says_why(monkeypatch, tmp_path):
    """A compiler that fails: nothing is cached, the status names the failure, models still
    run (on the torch kernels) and agree with the equations."""
    bad_cc = tmp_path / "broken-cc"
    bad_cc.write_text("#!/bin/sh\necho 'broken-cc: cannot compile' >&2\nexit 1\n")
    bad_cc.chmod(0o755)
    monkeypatch.setenv("CC", str(bad_cc))
    monkeypatch.setenv("HAMGRAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HAMGRAD_NATIVE", "1")
    monkeypatch.setattr(native, "_libs", {})
    monkeypatch.setattr(native, "_reasons", {})
    assert native.load("cascade_native") is None
    reason = native.status()["cascade_native"]
    assert reason.startswith("unavailable") and "cannot compile" in reason
    assert not any((tmp_path / "cache").glob("*.so"))  # no partial library left behind
    _compare("gradnet-c", 3, 30, F64, 1e-10)
    _compare("gradnet-m", 3, 30, F64, 1e-10)


@needs_compiler
def test_library_is_built_once_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HAMGRAD_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_libs", {})
    monkeypatch.setattr(native, "_reasons", {})
    assert native.load("modular_native") is not None
    built = list(tmp_path.glob("modular_native-*"))
    assert len(built) == 1 and native.status()["modular_native"] == "compiled"
    stamp = built[0].stat().st_mtime_ns
    monkeypatch.setattr(native, "_libs", {})  # a new process: found in the cache, not rebuilt
    assert native.load("modular_native") is not None
    assert built[0].stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def _run_in_child(queue):
    torch.set_num_threads(2)
    model = build_model("gradnet-c", 8, width=700, seed=0)
    with torch.no_grad():
        queue.put(float(model(torch.ones(256, 8)).sum()))


@needs_compiler
@pytest.mark.skipif(os.name != "posix", reason="fork is POSIX-only")
def test_forked_child_gets_its_own_thread_pool():
    """The thread pool does not survive fork(); a child that runs a model must not hang."""
    torch.set_num_threads(2)
    model = build_model("gradnet-c", 8, width=700, seed=0)
    with torch.no_grad():  # starts the pool in this process
        expected = float(model(torch.ones(256, 8)).sum())
    torch.set_num_threads(1)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_run_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "child hung or failed"
    assert queue.get(timeout=5) == pytest.approx(expected, rel=1e-5)


@needs_compiler
def test_loading_the_kernels_keeps_subnormals():
    """The libraries are linked without -ffast-math's start-up code, which would switch the
    whole process to flush-to-zero (caught once by hypothesis refusing to draw floats)."""
    assert native.load("cascade_native") is not None
    assert native.load("modular_native") is not None
    tiny32 = torch.tensor(1e-39, dtype=torch.float32)  # subnormal in float32
    assert float(tiny32 * 1.0) != 0.0
    assert float(torch.tensor(5e-324, dtype=F64) * 1.0) != 0.0


@needs_compiler
@pytest.mark.parametrize("dim", [1, 3, 40])
def test_saturated_cascade_in_float32_stays_finite(dim):
    """Pre-activations far beyond ±88 (where exp(-y) overflows float32): the sigmoids saturate
    instead of turning into NaN (a training run once diverged on exactly this), in values and
    gradients, and agree with the equations."""
    fused = build_model("gradnet-c", dim, width=64, seed=3, fused=True)
    eager = build_model("gradnet-c", dim, width=64, seed=3, fused=False)
    with torch.no_grad():
        for model in (fused, eager):
            model.weight.mul_(60.0)
            model.alpha.mul_(20.0)
    x = torch.randn(200, dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the cascade's pre-activations, layer by layer
        beta, cb, P, Q = eager.core_coefficients(x)
        s = x @ eager.weight.t()
        z = beta[0] * s + cb[0]
        largest = float(z.abs().max())
        for layer in range(1, eager.layers):
            z = beta[layer] * s + cb[layer] + P[layer - 1] * torch.tanh(z) + Q[layer - 1] * z
            largest = max(largest, float(z.abs().max()))
    assert 2 * largest > 100  # exp(2|z|) overflows float32: the regime of the bug
    target = torch.zeros(200, dim)
    got, want = _gradients(fused, x, target), _gradients(eager, x, target)
    for a, b in zip(got, want, strict=True):
        assert torch.isfinite(a).all()
        assert _close(a, b, 1e-4)
