"""The types of config values: annotations plus small constraint markers, and the check that applies them.

Builders and the `train` section declare keys as e.g. ``Annotated[float, Range(gt=0)]``;
`check_value` turns a YAML value into that type or says, in words, what was expected.

This module sits below both the components (models, data, clipping, optim, schedules, losses), whose
builders annotate their keys with it, and `gradexp.config`, which checks values against those
annotations; it imports nothing from gradexp, so no component needs to import the config package.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union


class InvalidValue(ValueError):
    """Raised by `check_value` with a message that completes 'KEY: ...'."""


@dataclass(frozen=True)
class Range:
    """Bounds for a number; any of them may be left out."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def check(self, value: float) -> None:
        if self.gt is not None and not value > self.gt:
            raise InvalidValue(f"expected a value > {_show(self.gt)}, got {_show(value)}")
        if self.ge is not None and not value >= self.ge:
            raise InvalidValue(f"expected a value >= {_show(self.ge)}, got {_show(value)}")
        if self.lt is not None and not value < self.lt:
            raise InvalidValue(f"expected a value < {_show(self.lt)}, got {_show(value)}")
        if self.le is not None and not value <= self.le:
            raise InvalidValue(f"expected a value <= {_show(self.le)}, got {_show(value)}")


@dataclass(frozen=True)
class OneOf:
    """A closed set of allowed values (numbers compared by value, so 2 == 2.0)."""

    choices: tuple[Any, ...]

    def check(self, value: Any) -> None:
        if value not in self.choices:
            raise InvalidValue(f"expected one of {', '.join(_show(c) for c in self.choices)}, got {_show(value)}")


PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
Fraction = Annotated[float, Range(ge=0, lt=1)]
NormType = Annotated[float, OneOf((1.0, 2.0, math.inf))]

_INFINITY_WORDS = {"inf": math.inf, "+inf": math.inf, "infinity": math.inf, "-inf": -math.inf}


# Integers longer than this are described, not printed (Python refuses to print past 4300 digits).
_LONGEST_SHOWN_INTEGER_BITS = 128


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _LONGEST_SHOWN_INTEGER_BITS:
        return f"an integer of {len(format(abs(value), 'x'))} hex digits"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value.is_integer():
            return str(int(value))
    if isinstance(value, str):
        return repr(value)
    return str(value)


def describe(annotation: Any) -> str:
    """A short human name for an annotation, used in 'expected ...' messages."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return describe(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(annotation))
    if origin is Literal:
        return "one of " + ", ".join(_show(c) for c in typing.get_args(annotation))
    if origin in (list, tuple):
        return f"a list of {describe(typing.get_args(annotation)[0])}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "null"}.get(annotation, str(annotation))


def check_value(value: Any, annotation: Any) -> Any:
    """Return `value` converted to `annotation`, or raise InvalidValue saying what was expected."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *constraints = typing.get_args(annotation)
        converted = check_value(value, base)
        for constraint in constraints:
            constraint.check(converted)
        return converted
    if origin in (Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        failures = []
        for option in options:
            if option is type(None):
                continue
            try:
                return check_value(value, option)
            except InvalidValue as failure:
                failures.append(str(failure))
        raise InvalidValue(failures[0] if len(failures) == 1 else f"expected {describe(annotation)}, got {_show(value)}")
    if origin is Literal:
        OneOf(typing.get_args(annotation)).check(value)
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise InvalidValue(f"expected {describe(annotation)}, got {_show(value)}")
        item_type = typing.get_args(annotation)[0]
        items = []
        for index, item in enumerate(value):
            try:
                items.append(check_value(item, item_type))
            except InvalidValue as failure:
                raise InvalidValue(f"item {index}: {failure}") from None
        return tuple(items) if origin is tuple else items
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise InvalidValue(f"expected true or false, got {_show(value)}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(f"expected an integer, got {_show(value)}")
        return value
    if annotation is float:
        if isinstance(value, str) and value.strip().lower() in _INFINITY_WORDS:
            return _INFINITY_WORDS[value.strip().lower()]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidValue(f"expected a number, got {_show(value)}")
        try:
            number = float(value)
        except OverflowError:
            raise InvalidValue(f"expected a number, got {_show(value)}, too large for one") from None
        if math.isnan(number):
            raise InvalidValue("expected a number, got nan")
        return number
    if annotation is str:
        if not isinstance(value, str):
            raise InvalidValue(f"expected a string, got {_show(value)}")
        return value
    raise TypeError(f"unsupported config annotation {annotation!r}")
