"""Experiment configuration: typed schema (`schema`), YAML loading and overrides (`loading`).

The value checks both use live below the components, in `gradexp.value_types`.
"""
