"""hamgrad.systems: the System protocol, the registry, physical systems and static gradient fields.

>>> from hamgrad.systems import get_system, list_systems
>>> sys = get_system("pendulum", g=3.0)
"""

# Importing the system modules registers them.
from hamgrad.systems.base import System
from hamgrad.systems.double_pendulum import DoublePendulum
from hamgrad.systems.ground_truth import simulate
from hamgrad.systems.henon_heiles import HenonHeiles
from hamgrad.systems.oscillator_chain import OscillatorChain
from hamgrad.systems.pendulum import Pendulum
from hamgrad.systems.registry import get_system, list_systems, register, system_class
from hamgrad.systems.spring_mass import SpringMass
from hamgrad.systems.three_body import ThreeBody
from hamgrad.systems.two_body import TwoBody

try:  # the static gradient fields register themselves on import
    from hamgrad.systems import fields as _fields  # noqa: F401
except ModuleNotFoundError:  # pragma: no cover - only while fields.py is absent
    pass

__all__ = [
    "DoublePendulum",
    "HenonHeiles",
    "OscillatorChain",
    "Pendulum",
    "SpringMass",
    "System",
    "ThreeBody",
    "TwoBody",
    "get_system",
    "list_systems",
    "register",
    "simulate",
    "system_class",
]
