"""Reading, validating and writing the public Community Notes data format."""
