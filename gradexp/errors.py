"""Typed errors raised by the library; only the CLI turns them into messages and exit codes."""

from __future__ import annotations


class GradexpError(Exception):
    """Base of every error a user can cause. `exit_code` is what the CLI exits with."""

    exit_code = 2

    def __init__(self, *arguments: str) -> None:
        self.arguments = arguments
        super().__init__(self.describe(*arguments))

    @staticmethod
    def describe(*arguments: str) -> str:
        return ": ".join(arguments)

    def __reduce__(self) -> tuple:
        # Rebuilt from the constructor's arguments: an error raised in a worker process reaches the
        # caller as the same error (Exception's own pickling would pass the message as the only argument).
        return type(self), self.arguments


class ConfigError(GradexpError):
    """A config file or override that cannot be turned into a valid experiment.

    The message always names the file and the dotted key, so one line tells the user where to look.
    """

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        self.message = message
        super().__init__(source, key, message)

    @staticmethod
    def describe(source: str, key: str, message: str) -> str:
        return ": ".join(part for part in (source, key, message) if part)

    def with_source(self, source: str) -> "ConfigError":
        """The same error attributed to a config file (builders raise it without knowing the file)."""
        return self if self.source else ConfigError(source, self.key, self.message)


class OptionError(GradexpError):
    """A command-line option whose value, or whose combination with other options, the command cannot use.

    No config file is at fault, so the message names the option alone: `--metric: expected ...`.
    """

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        self.message = message
        super().__init__(option, message)


class DataError(GradexpError):
    """Input data (a dataset file, a metrics CSV, a run folder) that is missing or malformed."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(path, message)


class OutputError(GradexpError):
    """An output location that cannot be written."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(path, message)
