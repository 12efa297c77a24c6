"""Experiment configuration: typed schema (`schema`), value checks (`types`), YAML loading and overrides (`loading`)."""
