"""Clip modes, looked up by `clip.mode`. Adding one: a module with `@CLIP_MODES.register` builders, and its import below.

A builder takes the model positionally (a gradexp.models.base.Model, as an optimizer builder takes the
parameters), so a rule that depends on the model's layout (agc) learns it once, at construction; the
others ignore it. Its keyword arguments are the `clip` section's keys; it returns a GradientClipper.
"""

from gradexp.registry import Registry

CLIP_MODES: Registry = Registry("clip mode")

from gradexp.clipping import fixed  # noqa: E402,F401  (registers its builders)
from gradexp.clipping import agc, autoclip, zclip  # noqa: E402,F401  (adaptive modes)
