"""Registry: name -> builder tables whose keyword-only parameters are the config keys."""

from __future__ import annotations

import inspect
from typing import Any, Literal, Optional

import pytest

from gradexp.clipping import CLIP_MODES
from gradexp.data import DATASETS
from gradexp.losses import LOSSES
from gradexp.models import MODELS
from gradexp.optim import OPTIMIZERS
from gradexp.registry import ConfigParameter, Registry
from gradexp.schedules import SCHEDULES
from gradexp.value_types import PositiveInt, check_value

ALL_REGISTRIES = [MODELS, DATASETS, LOSSES, OPTIMIZERS, SCHEDULES, CLIP_MODES]


def test_register_is_a_decorator_that_returns_the_builder_unchanged() -> None:
    registry: Registry = Registry("widget")

    def build() -> str:
        return "built"

    assert registry.register("plain")(build) is build
    assert registry.get("plain") is build
    assert registry.get("plain")() == "built"


def test_registering_a_name_twice_raises_and_keeps_the_first_builder() -> None:
    registry: Registry = Registry("widget")

    @registry.register("twice")
    def first() -> int:
        return 1

    def second() -> int:
        return 2

    with pytest.raises(ValueError, match="widget 'twice' is registered twice"):
        registry.register("twice")(second)
    assert registry.get("twice") is first


def test_contains_names_and_iteration_list_the_registered_names_sorted() -> None:
    registry: Registry = Registry("widget")
    for name in ["zeta", "alpha", "mid"]:
        registry.register(name)(lambda: None)
    assert "alpha" in registry and "zeta" in registry
    assert "beta" not in registry and 3 not in registry
    assert registry.names() == ["alpha", "mid", "zeta"]
    assert list(registry) == ["alpha", "mid", "zeta"]
    with pytest.raises(KeyError):
        registry.get("beta")


def test_parameters_are_the_keyword_only_ones_with_annotation_default_and_required() -> None:
    registry: Registry = Registry("widget")

    @registry.register("w")
    def build(spec: object, extra: int = 3, *, size: int, rate: float = 0.5,
              kind: Literal["a", "b"] = "a", path: Optional[str] = None) -> None:
        del spec, extra, size, rate, kind, path

    assert registry.parameters("w") == [
        ConfigParameter("size", int, None, True),
        ConfigParameter("rate", float, 0.5, False),
        ConfigParameter("kind", Literal["a", "b"], "a", False),
        ConfigParameter("path", Optional[str], None, False),
    ]


def test_parameters_resolve_string_annotations_under_future_annotations() -> None:
    registry: Registry = Registry("widget")

    @registry.register("w")
    def build(*, width: PositiveInt = 4, names: list[str] | None = None, untyped=1) -> None:
        del width, names, untyped

    # This module has `from __future__ import annotations`, so the raw annotations are strings.
    assert inspect.signature(build).parameters["width"].annotation == "PositiveInt"
    width, names, untyped = registry.parameters("w")
    assert width.annotation == PositiveInt
    assert names.annotation == (list[str] | None)
    assert untyped.annotation is Any
    assert [p.required for p in (width, names, untyped)] == [False, False, False]


def test_a_builder_without_keyword_only_parameters_has_no_config_keys() -> None:
    registry: Registry = Registry("widget")
    registry.register("w")(lambda optimizer, metric, *args, **kwargs: None)
    assert registry.parameters("w") == []


@pytest.mark.parametrize("registry", ALL_REGISTRIES, ids=lambda r: r.kind)
def test_every_real_builder_annotates_every_config_key(registry: Registry) -> None:
    assert registry.names(), f"no {registry.kind} registered"
    for name in registry:
        builder = registry.get(name)
        annotated = inspect.get_annotations(builder, eval_str=True)
        keyword_only = [p.name for p in inspect.signature(builder).parameters.values()
                        if p.kind is inspect.Parameter.KEYWORD_ONLY]
        parameters = registry.parameters(name)
        assert [p.name for p in parameters] == keyword_only
        for parameter in parameters:
            assert parameter.name in annotated, f"{registry.kind} {name}: {parameter.name} has no annotation"
            assert parameter.annotation is not Any
            assert not isinstance(parameter.annotation, str)


@pytest.mark.parametrize("registry", ALL_REGISTRIES, ids=lambda r: r.kind)
def test_every_real_default_passes_its_own_annotation(registry: Registry) -> None:
    # The resolved config is filled from these defaults and then trusted, so each must be a valid value.
    for name in registry:
        for parameter in registry.parameters(name):
            if not parameter.required:
                assert check_value(parameter.default, parameter.annotation) == parameter.default, (
                    f"{registry.kind} {name}: default of {parameter.name}")
