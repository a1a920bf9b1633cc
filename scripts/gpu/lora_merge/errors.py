"""The one error type of the merge: a message, a stable code, and the exit status it maps to."""

from __future__ import annotations

EXIT_FAILED = 1  # a step failed at run time (I/O, verification mismatch)
EXIT_BAD_INPUT = 2  # usage, adapter, base or output problems found before anything was written


class MergeError(Exception):
    """A domain error; merge_lora.main turns it into one stderr line and its exit status."""

    def __init__(self, code: str, message: str, exit_status: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code
        self.exit_status = exit_status


def bad_input(code: str, message: str) -> MergeError:
    return MergeError(code, message, EXIT_BAD_INPUT)


def failed(code: str, message: str) -> MergeError:
    return MergeError(code, message, EXIT_FAILED)
