"""Data tables (genre taxonomies, tag maps) shipped with genreslice, and tiny loaders for them."""
