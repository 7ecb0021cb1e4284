"""Exceptions that mean the input is wrong (a path, a value, a config, a file), not that ditto2 is: the CLI turns
them into one line and exit code 2, the page into one line of text."""
from __future__ import annotations


def user_errors() -> tuple:
    from omegaconf.errors import OmegaConfBaseException

    from ditto2.audio.io import AudioDecodeError
    from ditto2.controls import ControlTargetError

    return (ValueError, FileNotFoundError, IsADirectoryError, PermissionError, AudioDecodeError, OmegaConfBaseException,
            ControlTargetError)
