"""The scoring algorithm as pure functions over arrays (knows nothing of storage or HTTP)."""
