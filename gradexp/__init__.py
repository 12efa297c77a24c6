"""gradexp: a command-line lab for exploding and vanishing gradients."""

__version__ = "0.1.0"
