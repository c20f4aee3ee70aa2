"""Reading, validating and writing the public Community Notes data format."""

from bridgewatch.io.dataset import Dataset, read_dataset, read_rating_matrix
from bridgewatch.io.matrix import RatingMatrix, build_rating_matrix

__all__ = ["Dataset", "RatingMatrix", "build_rating_matrix", "read_dataset", "read_rating_matrix"]
