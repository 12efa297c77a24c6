"""Datasets, looked up by name. Adding one: a module with a `@DATASETS.register` builder, and its import below.

A builder that needs scikit-learn imports it in its body: it takes seconds to load, and only the runs whose
data come from it (regression, digits, classification) should pay for it.
"""

from gradexp.registry import Registry

DATASETS: Registry = Registry("dataset")

from gradexp.data import digit_sum  # noqa: E402,F401  (registers its builder)
from gradexp.data import classification, digits, mnist, random_normal, regression  # noqa: E402,F401
