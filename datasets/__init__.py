"""hamgrad.datasets: HDF5 trajectory datasets (schema v1), generation, loading, torch Dataset."""
