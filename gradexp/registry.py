"""Name -> builder registries for models, datasets, losses, optimizers and clip modes.

A builder's keyword-only parameters *are* its config keys: their annotations (with the
constraints in `gradexp.value_types`) validate the YAML, and their defaults fill the
resolved config. Positional parameters are what the runner passes in (data spec, parameters).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

Builder = TypeVar("Builder", bound=Callable[..., Any])


@dataclass(frozen=True)
class ConfigParameter:
    """One config key a builder accepts."""

    name: str
    annotation: Any
    default: Any
    required: bool


class Registry(Generic[Builder]):
    """A small name -> builder table; `register` is used as a decorator next to each builder."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Builder] = {}

    def register(self, name: str) -> Callable[[Builder], Builder]:
        def add(builder: Builder) -> Builder:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._builders[name] = builder
            return builder

        return add

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._builders))

    def names(self) -> list[str]:
        return sorted(self._builders)

    def get(self, name: str) -> Builder:
        return self._builders[name]

    def parameters(self, name: str) -> list[ConfigParameter]:
        """The config keys of builder `name`: its keyword-only parameters."""
        hints = inspect.get_annotations(self._builders[name], eval_str=True)
        found = []
        for parameter in inspect.signature(self._builders[name]).parameters.values():
            if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
                continue
            required = parameter.default is inspect.Parameter.empty
            found.append(
                ConfigParameter(
                    name=parameter.name,
                    annotation=hints.get(parameter.name, Any),
                    default=None if required else parameter.default,
                    required=required,
                )
            )
        return found
