"""tunelab: hyperparameter search for course-assignment deep-learning models on Ray Tune."""

__version__ = "0.1.0"


class UserError(Exception):
    """Bad input from the user: shown as a one-line message with exit status 2, never a traceback."""
