"""Performance and accuracy benchmarks. ``python -m benchmarks [NAME ...]`` (``make bench``).

Each ``benchmarks/bench_<name>.py`` defines ``run() -> list[dict]``; every row is one comparison
measured side by side in the same run: ``what``, ``ours``, ``peer``, ``ratio`` (ours / peer, so lower
is better for times), ``target`` (text), ``met`` (bool or None) and ``command``. The harness writes
``benchmarks/results/<name>.json`` and regenerates ``BENCHMARKS.md`` from all result files.
"""
