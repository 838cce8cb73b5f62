"""``tunelab dashboard [RUN]``: optuna-dashboard on 127.0.0.1 over one run's study file, or every run's.

optuna-dashboard serves one Optuna storage; a run's study is a journal file of its own (tunelab.store.study), so the
dashboard is given ``RunStudies``, which shows the studies of several files as one storage: run i's study is
study i, and its trials' ids are ``i * 2**32`` + their ids in the file. It reads the files as they are written
(each read catches up with the lines appended since), so a search's new trials and epochs appear while it runs;
over a whole results root, runs whose searches start later appear too. The dashboard's notes and the like are
written to the run's file; creating or deleting a study from the page is refused (a study belongs to its run).
"""

import copy
import sys
from collections.abc import Callable, Container, Sequence
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from optuna.storages import BaseStorage, JournalStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState

from tunelab.errors import UserError
from tunelab.store import runs, study

HOST = "127.0.0.1"  # only this machine; on a cluster's head node, forward the port (docs/clusters.md)
_STRIDE = 2**32  # a study's trial ids in the file, offset by its run's index (JavaScript reads ids up to 2**53)


class RunStudies(BaseStorage):
    """The studies of run folders' study files as one storage (see the module's docstring). ``root``: also pick up
    the runs under it whose study files appear later."""

    def __init__(self, files: dict[Path, JournalStorage], root: Path | None = None):
        """``files``: study files and their storages (``tunelab.store.study.check``)."""
        self._root = root
        self._files: list[Path] = []
        self._parts: list[tuple[JournalStorage, int]] = []  # each study's storage and its id there
        for path, storage in files.items():
            self._add(path, storage)

    def _add(self, path: Path, storage: JournalStorage) -> None:
        self._files.append(path)
        self._parts.append((storage, storage.get_all_studies()[0]._study_id))

    def _refresh(self) -> None:
        if self._root is None:
            return
        for path in sorted(self._root.glob(f"*/{runs.STUDY_FILE}")):
            if path not in self._files:
                try:
                    self._add(path, study.check(path))
                except UserError:  # a search that is creating its study (or a broken file): tried again next time
                    pass

    def _study(self, study_id: int) -> tuple[JournalStorage, int]:
        if not 0 <= study_id < len(self._parts):
            raise KeyError(f"no study {study_id}")
        return self._parts[study_id]

    def _trial(self, trial_id: int) -> tuple[JournalStorage, int]:
        return self._study(trial_id // _STRIDE)[0], trial_id % _STRIDE

    def _out(self, index: int, trial: FrozenTrial) -> FrozenTrial:
        trial = copy.copy(trial)
        trial._trial_id = index * _STRIDE + trial._trial_id
        return trial

    # studies

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        raise NotImplementedError("a study belongs to its run: `tunelab search` creates one")

    def delete_study(self, study_id: int) -> None:
        raise NotImplementedError("a study belongs to its run: delete the run's folder instead")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        storage, inner = self._study(study_id)
        storage.set_study_user_attr(inner, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        storage, inner = self._study(study_id)
        storage.set_study_system_attr(inner, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        for study_id, (storage, inner) in enumerate(self._parts):
            if storage.get_study_name_from_id(inner) == study_name:
                return study_id
        raise KeyError(f"no study {study_name!r}")

    def get_study_name_from_id(self, study_id: int) -> str:
        storage, inner = self._study(study_id)
        return storage.get_study_name_from_id(inner)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        storage, inner = self._study(study_id)
        return storage.get_study_directions(inner)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        storage, inner = self._study(study_id)
        return storage.get_study_user_attrs(inner)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        storage, inner = self._study(study_id)
        return storage.get_study_system_attrs(inner)

    def get_all_studies(self) -> list[FrozenStudy]:
        self._refresh()
        studies = []
        for study_id, (storage, inner) in enumerate(self._parts):
            frozen = copy.copy(next(s for s in storage.get_all_studies() if s._study_id == inner))
            frozen._study_id = study_id
            studies.append(frozen)
        return studies

    # trials

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        storage, inner = self._study(study_id)
        return study_id * _STRIDE + storage.create_new_trial(inner, template_trial)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float, distribution) -> None:
        storage, inner = self._trial(trial_id)
        storage.set_trial_param(inner, param_name, param_value_internal, distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        storage, inner = self._study(study_id)
        return study_id * _STRIDE + storage.get_trial_id_from_study_id_trial_number(inner, trial_number)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        storage, inner = self._trial(trial_id)
        return storage.set_trial_state_values(inner, state, values)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        storage, inner = self._trial(trial_id)
        storage.set_trial_intermediate_value(inner, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        storage, inner = self._trial(trial_id)
        storage.set_trial_user_attr(inner, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        storage, inner = self._trial(trial_id)
        storage.set_trial_system_attr(inner, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        storage, inner = self._trial(trial_id)
        return self._out(trial_id // _STRIDE, storage.get_trial(inner))

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:  # fmt: skip
        storage, inner = self._study(study_id)
        return [self._out(study_id, t) for t in storage.get_all_trials(inner, deepcopy=deepcopy, states=states)]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # Ctrl-C does not wait for a page's open requests


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args):  # no line per request
        pass


def storage_of(root: Path, run_name: str | None) -> tuple[RunStudies, str]:
    """The storage to serve and what it shows, in words: one run's study, or every run's under ``root``."""
    if run_name is not None:
        run = runs.open_run(run_name, root)
        return RunStudies({run.study_file: study.check(run.study_file, run.spec.argument)}), f"run {run.name}"
    files = sorted(root.glob(f"*/{runs.STUDY_FILE}"))
    if not files:
        found = sorted(p.parent.name for p in root.glob(f"*/{runs.INFO_FILE}"))
        raise UserError(f"no run in {root} has an Optuna study (study.log) yet"
                        + (f" (runs there, searched before tunelab kept studies: {', '.join(found)})" if found else "")
                        + ": start a search (`tunelab search EXPERIMENT`), then `tunelab dashboard`")  # fmt: skip
    shown = f"every run in {root} ({len(files)} now; runs that start later appear too)"
    return RunStudies({f: study.check(f) for f in files}, root), shown


def start(storage: BaseStorage, port: int | None) -> WSGIServer:
    """optuna-dashboard's server on HOST:``port`` (None: a free port), bound and not yet serving (its
    ``serve_forever``: in the foreground, ``serve``, or in a thread, tunelab.api's ``Run.dashboard``)."""
    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage)
    try:
        return make_server(HOST, port or 0, app, server_class=_Server, handler_class=_Quiet)
    except (OSError, OverflowError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise UserError(f"cannot serve the dashboard on {HOST}:{port}: {why}; choose another --port, or leave "
                        "--port out for a free one") from None  # fmt: skip


def address(server: WSGIServer) -> str:
    return f"http://{HOST}:{server.server_port}/dashboard"


def serve(storage: BaseStorage, port: int | None, ready: Callable[[str], None]) -> None:
    """optuna-dashboard on HOST:``port`` (None: a free port) until Ctrl-C; ``ready`` gets its address first."""
    server = start(storage, port)
    try:
        ready(address(server))
        server.serve_forever()
    except KeyboardInterrupt:
        print("\ndashboard stopped", file=sys.stderr)
    finally:
        server.server_close()
