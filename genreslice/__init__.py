"""genreslice: music genre (and any tag) recognition at data-set scale.

The repository's folders are installed as sub-packages of this one package:

- :mod:`genreslice.metadata`: data tables (genre taxonomies, tag maps) and tiny loaders;
- :mod:`genreslice.genre_getters`: one module per label source (ID3 tags, FMA, MTG-Jamendo);
- :mod:`genreslice.pipeline`: audio discovery, SoX spectrograms, slicing and the resumable build;
- :mod:`genreslice.training`: the slice data source, models, training, evaluation and prediction;
- :mod:`genreslice.scripts`: the ``genreslice`` command line.

Importing the package imports none of them (and no TensorFlow). Messages go to the ``genreslice`` logger, which
prints nothing until an application configures logging (``logging.basicConfig()``; the command line does).
"""
from __future__ import annotations

import logging

__version__ = "0.1.0"

# A library's loggers print nothing of their own accord: without this, Python's last-resort handler would write
# genreslice's warnings to stderr in a notebook that never asked for them.
logging.getLogger("genreslice").addHandler(logging.NullHandler())
