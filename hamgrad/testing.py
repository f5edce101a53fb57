"""Assertion helpers users can run on their own models, systems and integrators.

Each helper raises ``AssertionError`` with a message giving the measured figure and the bound.
"""

from __future__ import annotations

# --- gradient fields: conservative / monotone ---------------------------------------------------

# --- integrators: symplecticity, convergence order, energy ---------------------------------------
