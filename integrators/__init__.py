"""hamgrad.integrators: symplectic, implicit and torchdiffeq integrators behind one ``rollout()``."""
