"""A synthetic community with ground truth, written in the public data format."""
