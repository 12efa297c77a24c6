"""Typed errors raised by the library; only the CLI turns them into messages and exit codes."""

from __future__ import annotations


class GradexpError(Exception):
    """Base of every error a user can cause. `exit_code` is what the CLI exits with."""

    exit_code = 2


class ConfigError(GradexpError):
    """A config file or override that cannot be turned into a valid experiment.

    The message always names the file and the dotted key, so one line tells the user where to look.
    """

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        self.message = message
        location = ": ".join(part for part in (source, key) if part)
        super().__init__(f"{location}: {message}" if location else message)

    def with_source(self, source: str) -> "ConfigError":
        """The same error attributed to a config file (builders raise it without knowing the file)."""
        return self if self.source else ConfigError(source, self.key, self.message)


class DataError(GradexpError):
    """Input data (a dataset file, a metrics CSV, a run folder) that is missing or malformed."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class OutputError(GradexpError):
    """An output location that cannot be written."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")
