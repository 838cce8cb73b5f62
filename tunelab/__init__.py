"""tunelab: hyperparameter search for course-assignment deep-learning models on Ray Tune.

The Python API (tunelab.api): ``tunelab.search``, ``plan``, ``resume``, ``open``, ``compare``, ``describe`` and the
``Run`` they return. The steps live in subpackages by stage, each importing only those before it: tunelab.trainable
(the protocol of a model), tunelab.spec (an experiment's file, its plan), tunelab.store (a run's files: its study,
the leaderboard), tunelab.engine (the search, its trials, the retrain) and tunelab.report; beside them tunelab.data,
and the pieces every stage uses (errors, files, cache, progress, figures, tracking)."""

__version__ = "0.1.0"


# tunelab.api imports only the standard library at first (each function imports the steps it runs): `import tunelab`
# loads no Ray, torch, pandas or Optuna.
from tunelab.api import Run, compare, describe, open, plan, resume, search  # noqa: E402  (it needs the errors above)
from tunelab.errors import DamagedFile, Failed, UserError

__all__ = ["DamagedFile", "Failed", "Run", "UserError", "compare", "describe", "open", "plan", "resume", "search"]
