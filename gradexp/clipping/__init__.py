"""Clip modes, looked up by `clip.mode`. Adding one: a module with `@CLIP_MODES.register` builders, and its import below.

A builder's keyword arguments are the `clip` section's keys; it returns a GradientClipper.
"""

from gradexp.registry import Registry

CLIP_MODES: Registry = Registry("clip mode")

from gradexp.clipping import fixed  # noqa: E402,F401  (registers its builders)
from gradexp.clipping import agc, autoclip, zclip  # noqa: E402,F401  (adaptive modes)
