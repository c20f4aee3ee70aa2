"""Rater similarity, polarization and coordinated-group detection."""
