"""tunelab: hyperparameter search for course-assignment deep-learning models on Ray Tune.

The Python API (tunelab.api): ``tunelab.search``, ``plan``, ``resume``, ``open``, ``compare``, ``describe`` and the
``Run`` they return. The steps themselves are the modules tunelab.engine (the Ray Tune search), tunelab.planner,
tunelab.comparison and tunelab.description."""

__version__ = "0.1.0"


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


# tunelab.api imports only the standard library at first (each function imports the steps it runs): `import tunelab`
# loads no Ray, torch, pandas or Optuna.
from tunelab.api import Run, compare, describe, open, plan, resume, search  # noqa: E402  (it needs the errors above)

__all__ = ["Failed", "Run", "UserError", "compare", "describe", "open", "plan", "resume", "search"]
