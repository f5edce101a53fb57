"""Training loops: gradient-field regression and learning Hamiltonian dynamics.

``fit_gradient_field`` (static fields) lives in :mod:`hamgrad.field_training` and is re-exported here.
"""

from hamgrad.field_training import fit_gradient_field  # noqa: F401
