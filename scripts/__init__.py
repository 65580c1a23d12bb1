"""The genreslice command line."""
