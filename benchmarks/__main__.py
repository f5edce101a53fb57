"""Run benchmarks: ``python -m benchmarks`` (all) or ``python -m benchmarks models integrators``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from benchmarks.harness import write_results


def available() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {available()}", file=sys.stderr)
        return 2
    for name in names:
        print(f"== benchmark {name}", flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        rows = module.run()
        path = write_results(name, rows)
        for r in rows:
            print(f"  {r.get('what')}: ratio {r.get('ratio')} (target {r.get('target')})")
        print(f"  -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
