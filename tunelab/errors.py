"""tunelab's two kinds of error, which the command line turns into a message and an exit status (no traceback)."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunelab.api import Run


class UserError(Exception):
    """Bad input from the user: shown as a one-line message with exit status 2, never a traceback."""


class DamagedFile(UserError):
    """A data set's file that its reader cannot read (truncated, garbled, not in its format): the file and what is
    wrong; tunelab.data, which knows the data set, adds how to get a good copy."""


class Failed(Exception):
    """A command that ran and did not succeed (every trial or model failed, or Ctrl-C stopped it): a one-line
    message and its exit status, 1 or ``INTERRUPTED``."""

    INTERRUPTED = 130  # a shell's status for a command that SIGINT ended
    run: "Run | None" = None  # the Run whose results were written before it failed (the command line shows them)

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status
