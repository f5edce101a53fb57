"""hamgrad: learning Hamiltonian dynamics with gradient networks.

Sub-packages: :mod:`hamgrad.models` (gradient networks and baselines), :mod:`hamgrad.systems`
(physical systems and static gradient fields), :mod:`hamgrad.integrators` (``rollout`` and the
integrator registry), :mod:`hamgrad.datasets` (HDF5 trajectory datasets), plus
:mod:`hamgrad.hamiltonian`, :mod:`hamgrad.train`, :mod:`hamgrad.metrics` and :mod:`hamgrad.testing`.
"""

__version__ = "0.1.0"
