"""Where the heavy sweeps run: local (numpy + numba) or distributed (Spark)."""
