"""hamgrad.systems: the System protocol, the registry, physical systems and static gradient fields.

>>> from hamgrad.systems import get_system, list_systems
>>> sys = get_system("pendulum", g=3.0)
"""

from hamgrad.systems.registry import get_system, list_systems, register, system_class

__all__ = ["get_system", "list_systems", "register", "system_class"]
