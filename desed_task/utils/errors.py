"""Errors in what the user gave (config, data, checkpoint), as opposed to bugs.

The recipes' entry point prints an `InputError` as one line (`error: ...`) and exits with status 2;
anything else keeps its traceback. Each concrete class also derives from the built-in exception a
caller would expect, so `except ValueError` / `FileNotFoundError` / `KeyError` keep working.
"""
from __future__ import annotations


class InputError(Exception):
    """Base class: the message names the file, line or config key to fix."""


class BadInput(InputError, ValueError):
    """A config value, annotation or checkpoint that is present but wrong."""


class MissingInput(InputError, FileNotFoundError):
    """A file or folder that the config or the command line names does not exist."""


class _PlainKeyError(KeyError):
    def __str__(self) -> str:  # KeyError would print its message quoted
        return str(self.args[0]) if self.args else ""


class UnknownConfigKey(InputError, _PlainKeyError):
    """An override names a config key that does not exist."""


class CheckpointKeyMismatch(InputError, _PlainKeyError):
    """A checkpoint's state-dict names do not match the model it is loaded into."""
