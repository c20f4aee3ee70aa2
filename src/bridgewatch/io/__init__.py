"""Reading, validating and writing the public Community Notes data format."""

from bridgewatch.io import heap
from bridgewatch.io.dataset import Dataset, read_dataset, read_rating_matrix
from bridgewatch.io.matrix import RatingMatrix, build_rating_matrix

heap.use_malloc_for_arrow()  # before any reader allocates (heap says why)

__all__ = ["Dataset", "RatingMatrix", "build_rating_matrix", "read_dataset", "read_rating_matrix"]
