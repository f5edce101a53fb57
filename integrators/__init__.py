"""hamgrad.integrators: symplectic, implicit and torchdiffeq integrators behind one ``rollout()``.

>>> from hamgrad.integrators import rollout, list_integrators
>>> traj = rollout(h, x0, dt=0.05, n_steps=400, method="leapfrog")  # (B, 401, 2n)
>>> print(integrators_table())

Importing this package registers every method (each module registers its classes).
"""

from hamgrad.integrators import implicit_midpoint as _implicit_midpoint  # noqa: F401  (registers)
from hamgrad.integrators import splitting as _splitting  # noqa: F401  (registers)
from hamgrad.integrators import torchdiffeq_methods as _torchdiffeq_methods  # noqa: F401
from hamgrad.integrators.base import (
    Integrator,
    IntegratorInfo,
    get_integrator,
    integrator_names,
    integrators_table,
    list_integrators,
    register_integrator,
)
from hamgrad.integrators.rollout import rollout

__all__ = [
    "Integrator",
    "IntegratorInfo",
    "get_integrator",
    "integrator_names",
    "integrators_table",
    "list_integrators",
    "register_integrator",
    "rollout",
]
