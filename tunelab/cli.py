"""The command line: tunelab list | plan | search | resume | leaderboard | dashboard | retrain | report | describe |
compare | check | new | data."""

import argparse
import os
import sys

from tunelab import __version__, api
from tunelab.errors import Failed, UserError


def _cmd_list(args) -> None:
    from tunelab.spec import spaces
    from tunelab.trainable import protocol

    print("Experiments (search_spaces/):")
    for name, path in spaces.experiments().items():
        try:
            spec = spaces.load_spec(name)
            print(f"  {name:24s} {spec.trainable_name:18s} {spec.dataset:14s} {spec.metric} ({spec.mode})")
        except UserError as e:
            print(f"  {name:24s} INVALID: {str(e).splitlines()[0]}")
    print("\nTrainables:")
    for trainable in protocol.registered():
        print(f"  {trainable.name:24s} {trainable.dataset:14s} {trainable.metric} ({trainable.mode})")
    _cmd_data_list(args, heading="\nData sets")


def _cmd_doctor(args) -> None:
    from tunelab import data, doctor

    lines, outside = doctor.report(data.data_root(args.data_dir), None)
    print("\n".join(lines))
    if outside:
        raise Failed(f"{outside} librar{'y is' if outside == 1 else 'ies are'} outside the tested range (see above)")


def _cmd_data_list(args, heading: str = "Data sets") -> None:
    from tunelab import data

    root = data.data_root(args.data_dir)
    print(f"{heading} (data root {root}):")
    for name in data.SOURCES:
        found = data.locate(name, root)
        print(f"  {name:24s} {'present: ' + str(found) if found else 'missing: tunelab data fetch ' + name}")


def _cmd_data_fetch(args) -> None:
    from tunelab import data

    print(f"{args.dataset}: {data.fetch(args.dataset, data.data_root(args.data_dir))}")


def _cmd_data_path(args) -> None:
    from tunelab import data

    print(data.require(args.dataset, data.data_root(args.data_dir)))


def _cmd_plan(args) -> None:
    plan = api.plan(args.experiment, time_budget=args.time_budget, retrain_budget=args.retrain_budget,
                    trials=args.trials, max_epochs=args.max_epochs, subset=args.subset, concurrency=args.concurrency,
                    cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, no_priors=args.no_priors,
                    data_dir=args.data_dir)  # fmt: skip
    print(plan)


def _cmd_search(args) -> None:
    _searched(lambda: api.search(
        args.experiment, time_budget=args.time_budget, retrain_budget=args.retrain_budget, trials=args.trials,
        max_epochs=args.max_epochs, subset=args.subset, concurrency=args.concurrency,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, seed=args.seed, name=args.name,
        wandb=args.wandb, warm_start=args.warm_start or (), no_priors=args.no_priors, address=args.address,
        storage=args.storage, data_dir=args.data_dir, results_dir=args.results_dir, verbose=args.verbose,
    ))  # fmt: skip


def _cmd_resume(args) -> None:
    _searched(lambda: api.resume(args.run, address=args.address, storage=args.storage, wandb=args.wandb,
                                 results_dir=args.results_dir, verbose=args.verbose))  # fmt: skip


def _searched(start) -> None:
    """A search or resume (``start``), then its leaderboard's top, its files and what is left; where no trial
    finished, the error follows them."""
    from tunelab.engine import cluster

    try:
        run = start()
    except Failed as e:
        if e.run is not None:
            _finish(e.run)
        raise
    finally:
        cluster.keep_local(False)  # one search per process: its local Ray stops with it (the API's stays up)
    _finish(run)


def _finish(run: api.Run) -> None:
    from tunelab.engine import retrain
    from tunelab.spec import planner
    from tunelab.store import leaderboard

    board = run.leaderboard
    print("\n" + leaderboard.render(board, run.stored, top=5))
    print(f"\nLeaderboard: {run.stored.leaderboard_file}")
    if run.stored.best_file.is_file():
        print(f"Best config: {run.stored.best_file}")
    if expected := retrain.expected(run.stored):
        epochs, seconds = expected
        print(f"Retrain of the best config: {epochs} epochs on the whole training set, about "
              f"{planner.readable(seconds)} per seed at its trial's pace (`tunelab retrain {run.name}`)")  # fmt: skip
    unfinished = board["status"].isin(["pending", "interrupted"]).sum() if len(board) else 0
    if unfinished:
        print(f"\n{unfinished} trial(s) did not finish: `tunelab resume {run.name}` continues the search")
    if run.warning:
        print(run.warning, file=sys.stderr)


def _cmd_leaderboard(args) -> None:
    from tunelab.store import leaderboard

    run = api.open(args.run, args.results_dir)
    print(leaderboard.render(run.refresh(), run.stored, top=args.top))


def _cmd_dashboard(args) -> None:
    from tunelab.report import dashboard
    from tunelab.store import runs

    storage, shown = dashboard.storage_of(runs.results_root(args.results_dir), args.run)

    def ready(address: str) -> None:
        print(f"optuna-dashboard of {shown}: {address}\nCtrl-C stops it.", flush=True)

    dashboard.serve(storage, args.port, ready)


def _cmd_retrain(args) -> None:
    run = api.open(args.run, args.results_dir)
    try:
        table = run.retrain(top_k=args.top_k, seeds=args.seeds, ensemble=args.ensemble, epochs=args.epochs,
                            subset=args.subset, wandb=args.wandb, verbose=args.verbose)  # fmt: skip
    except Failed as e:
        if e.run is not None:
            _retrained(run, run.retrained)
        raise
    _retrained(run, table)


def _retrained(run: api.Run, table) -> None:
    from tunelab.store import retrained

    stored = run.stored
    print("\n" + table.to_markdown(index=False, floatfmt=".4f"))
    print(f"\nRetrain results: {stored.retrain_file}")
    ensemble = stored.ensemble_table()
    if ensemble is not None:
        row = ensemble.iloc[0]
        print(f"Ensemble (the mean probabilities of {row['members']} models: {row['models']}): {stored.ensemble_file}")
    first_try = retrained.first_try(stored, table)
    if first_try is not None:
        print("\nWhat a student would try first:\n\n" + first_try.to_markdown(index=False))
        print(f"\nBaseline: {stored.baseline_file}")
    if run.warning:
        print(run.warning, file=sys.stderr)


def _cmd_report(args) -> None:
    print(f"Report: {api.open(args.run, args.results_dir).report(wandb=args.wandb)}")


def _cmd_describe(args) -> None:
    print(api.describe(args.trainable, args.config, args.dataset, data_dir=args.data_dir))


def _cmd_compare(args) -> None:
    result = api.compare(args.run_a, args.run_b, *args.more, results_dir=args.results_dir)
    out = result.folder
    assert out is not None  # api.compare's result says where it wrote
    if result.table is not None:
        print((out / "auc.md").read_text())
    for caption, path in result.figures.items():
        print(f"{caption}:\n  {path}")
    if result.table is not None:
        print(f"Table: {out / 'auc.csv'}")


def _cmd_check(args) -> None:
    from tunelab.engine import checks

    def report(result) -> None:
        if result.check == "protocol":
            print(f"Checking {args.trainable} on a tiny data set shaped like its DATASET's:")
        print(f"  {result.check:14s} " + str(result).replace("\n", "\n" + " " * 17), flush=True)

    trainable, results = checks.check_trainable(args.trainable, report)
    failed = [r.check for r in results if r.failed]
    if failed:
        raise UserError(f"{args.trainable}: {len(failed)} of {len(results)} checks failed: {', '.join(failed)}")
    assert trainable is not None  # None only where the protocol check failed
    print(f"All {len(results)} checks passed ({checks.describe_data(checks.tiny_data(trainable))}).")


def _cmd_new(args) -> None:
    from tunelab import scaffold

    py, space, experiment = scaffold.new(args.name, args.like)
    print(f"Wrote {py} (a copy of trainables/{args.like}.py) and {space} (a copy of search_spaces/{experiment}.yaml, "
          f"with trainable: {py.name}). Next:")  # fmt: skip
    print(f"  edit {py} (the model, DEFAULTS) and {space} (what to search)")
    print(f"  tunelab check {py}")
    print(f"  tunelab search {space} --time-budget 10m   (planned for this machine; tunelab plan shows the plan)")


def _flag(check):
    """An argparse type from one of tunelab.api's checks of a value, whose UserError argparse reports as its own
    error (``argument --flag: ...``, exit status 2)."""

    def parse(text: str):
        try:
            return check(text)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


_integer, _duration, _fraction, _positive, _seed, _gpus, _run_name = map(
    _flag, (api.number, api.duration, api.fraction, api.positive, api.seed, api.gpus, api.run_name)
)


class _Commands:
    """The commands of a parser (or of a command's actions), each of which also takes --data-dir and --results-dir
    after its name."""

    def __init__(self, sub, roots: argparse.ArgumentParser) -> None:
        self.sub = sub
        self.roots = roots

    def add(self, name: str, func, help: str) -> argparse.ArgumentParser:
        c = self.sub.add_parser(name, help=help, description=help, parents=[self.roots])
        c.set_defaults(func=func)
        return c


def _roots(parser_: argparse.ArgumentParser, default) -> None:
    parser_.add_argument("--data-dir", default=default, help="data root (default: $TUNELAB_DATA or ./datasets)")
    parser_.add_argument("--results-dir", default=default, help="results root (default: $TUNELAB_RESULTS or ./results)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tunelab", description="Hyperparameter search for course-assignment models on Ray Tune."
    )
    p.add_argument("--version", action="version", version=f"tunelab {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    _roots(p, None)
    roots = argparse.ArgumentParser(add_help=False)  # accepted after the command too
    _roots(roots, argparse.SUPPRESS)
    commands = _Commands(p.add_subparsers(dest="command", required=True, metavar="COMMAND"), roots)
    commands.add("list", _cmd_list, "list experiments, trainables and data sets")
    commands.add("doctor", _cmd_doctor, "the Python, Ray, Optuna, torch and W&B versions tunelab runs with, each "
                 "against its tested range (exit 1 outside it), the data root and the W&B mode")  # fmt: skip
    _plan_command(commands)
    _search_command(commands)
    _resume_command(commands)
    _leaderboard_command(commands)
    _dashboard_command(commands)
    _retrain_command(commands)
    _report_command(commands)
    _describe_command(commands)
    _compare_command(commands)
    _check_command(commands)
    _new_command(commands)
    _data_command(commands)
    return p


def _plan_command(commands: _Commands) -> None:
    pl = commands.add("plan", _cmd_plan, "print the plan of a search within a time budget (trials, epochs, ASHA's "
                      "rungs, data fraction, concurrency, retrain) without running it; it times a short "
                      "calibration")  # fmt: skip
    _planned_flags(pl)


def _planned_flags(c: argparse.ArgumentParser) -> None:
    """The experiment and what a search plans (or takes as given), which plan and search share."""
    c.add_argument("experiment", help="a file name in search_spaces/ (without .yaml) or a path to a YAML file")
    c.add_argument("--time-budget", type=_duration, metavar="T", help="plan the search to end within T (90s, 20m, "
                   "1.5h; plain seconds), calibration included; it stops when T is up, with results so far "
                   "kept")  # fmt: skip
    c.add_argument("--retrain-budget", type=_duration, metavar="T", help="with --time-budget: try only configs "
                   "whose retrain (one seed, the planned epochs, all the data) is expected within T (default: "
                   "the --time-budget)")  # fmt: skip
    c.add_argument("--trials", type=_integer, help="number of trials (default: planned, else the file's run_cap)")
    c.add_argument("--max-epochs", type=_integer, help="epochs per trial (default: planned, else the file's)")
    c.add_argument("--cpus-per-trial", type=_positive, metavar="C", help="CPUs per trial (also torch's threads)")
    c.add_argument("--gpus-per-trial", type=_gpus, metavar="G", help="GPUs per trial; fractions pack trials on one GPU")
    c.add_argument("--concurrency", type=_integer, metavar="K",
                   help="at most K trials at once (default: planned, else as many as fit)")  # fmt: skip
    c.add_argument("--subset", type=_fraction, metavar="F",
                   help="train on a fraction F of the data (default: planned, else all of it)")  # fmt: skip
    c.add_argument("--no-priors", action="store_true", help="do not evaluate the file's priors (configs that "
                   "did well in earlier searches of the experiment) first, after its baseline")  # fmt: skip


def _search_command(commands: _Commands) -> None:
    s = commands.add("search", _cmd_search, "run a hyperparameter search for an experiment (planned to fit its time "
                     "budget where it has one)")  # fmt: skip
    _planned_flags(s)
    s.add_argument("--seed", type=_seed, help="seed of the sampler and the trials")
    s.add_argument("--name", type=_run_name, metavar="RUN",
                   help="name of the run's results folder (default: the experiment)")  # fmt: skip
    s.add_argument("--address", help="an existing Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    s.add_argument("--storage", metavar="PATH|URI", help="where Ray keeps the trials and checkpoints: a shared file "
                   "system or a bucket (s3://..., gs://...) that every node reaches; needed on a multi-node cluster "
                   "(default: the results folder)")  # fmt: skip
    s.add_argument("--warm-start", type=_run_name, nargs="+", metavar="RUN", help="start the sampler from the "
                   "finished trials of earlier runs of the same trainable and data set (those outside this search's "
                   "space are dropped); they are not this run's trials and do not count in --trials")  # fmt: skip
    _search_verbose_flag(s)
    _wandb_flag(s)


def _resume_command(commands: _Commands) -> None:
    res = commands.add("resume", _cmd_resume, "continue an interrupted search")
    res.add_argument("--address", help="the Ray cluster to continue on (default: $RAY_ADDRESS, else the search's)")
    res.add_argument("--storage", metavar="PATH|URI", help="the search's --storage, if its contents have moved")
    _run_argument(res)
    _search_verbose_flag(res)
    _wandb_flag(res)


def _leaderboard_command(commands: _Commands) -> None:
    lb = commands.add("leaderboard", _cmd_leaderboard,
                      "show a run's leaderboard (from its trials so far: also while it runs)")  # fmt: skip
    lb.add_argument("--top", type=_integer, default=10, metavar="K")
    _run_argument(lb)


def _dashboard_command(commands: _Commands) -> None:
    dash = commands.add("dashboard", _cmd_dashboard, "watch a run's Optuna study (trials, learning curves, "
                        "importances) in optuna-dashboard on 127.0.0.1, while its search runs and after; Ctrl-C stops "
                        "it")  # fmt: skip
    dash.add_argument("run", metavar="RUN", nargs="?", help="the run (default: every run under the results root)")
    dash.add_argument("--port", type=_integer, help="the port to serve on (default: a free one)")


def _retrain_command(commands: _Commands) -> None:
    r = commands.add("retrain", _cmd_retrain, "retrain the best config(s) on train+validation and test them")
    r.add_argument("--top-k", type=_integer, default=1, metavar="K", help="retrain the K best configs")
    r.add_argument("--seeds", type=_integer, default=3, metavar="S", help="seeds per config")
    r.add_argument("--epochs", type=_integer, metavar="E",
                   help="epochs (default: a completed trial's best epoch where it peaked before its last, else "
                        "the plan's retrain epochs, else the search's max epochs)")  # fmt: skip
    r.add_argument("--subset", type=_fraction, metavar="F", help="train on a fraction F of train+validation (default: "
                   "all of it after a planned search, else the search's --subset; 1 for all of it)")  # fmt: skip
    r.add_argument("--ensemble", action="store_true", help="also test the mean of all K x S models' predicted "
                   "class probabilities (classifiers)")  # fmt: skip
    _run_argument(r)
    r.add_argument("--verbose", action="store_true", help="also print a line per epoch (without it: a progress bar "
                   "in a terminal, else a line per model)")  # fmt: skip
    _wandb_flag(r)


def _report_command(commands: _Commands) -> None:
    rep = commands.add("report", _cmd_report, "write the run's report: figures, report.md and report.html")
    _run_argument(rep)
    _wandb_flag(rep)


def _run_argument(c: argparse.ArgumentParser) -> None:
    c.add_argument("run", metavar="RUN", help="the run (the experiment's name unless search had --name)")


def _search_verbose_flag(c: argparse.ArgumentParser) -> None:
    c.add_argument("--verbose", action="store_true", help="also print a line per trial start and per epoch "
                   "(without it: a progress bar in a terminal, else a line per trial that ends)")  # fmt: skip


def _wandb_flag(c: argparse.ArgumentParser) -> None:
    c.add_argument("--wandb", choices=["online", "offline", "disabled"],
                   help="W&B mode (default: online with an API key, else offline)")  # fmt: skip


def _describe_command(commands: _Commands) -> None:
    desc = commands.add("describe", _cmd_describe, "a trainable's layers: every intermediate shape, parameters per "
                        "layer and in total")  # fmt: skip
    desc.add_argument("trainable", help="a trainable (see `tunelab list`), a module or a Python file")
    desc.add_argument("--config", metavar="FILE", help="YAML of hyperparameters (or a run's best.yaml)")
    desc.add_argument("--dataset", help="the data set that sizes the model (default: the trainable's)")


def _compare_command(commands: _Commands) -> None:
    cmp = commands.add("compare", _cmd_compare, "runs' retrained models side by side: ROC curves and AUCs of "
                       "classifiers, reconstructions of the same test images, samples")  # fmt: skip
    cmp.add_argument("run_a", metavar="RUN_A")
    cmp.add_argument("run_b", metavar="RUN_B")
    cmp.add_argument("more", metavar="RUN", nargs="*", help="more runs, on the same data set")


def _check_command(commands: _Commands) -> None:
    chk = commands.add("check", _cmd_check, "run the registry's tests on a trainable (your own file) on a tiny data "
                       "set: the protocol, build, train_epoch, evaluate, gradients, save/restore and "
                       "figures")  # fmt: skip
    chk.add_argument("trainable", metavar="FILE.py", help="a Python file (or a registered trainable or a module)")


def _new_command(commands: _Commands) -> None:
    new = commands.add("new", _cmd_new, "write NAME.py (a built-in trainable's source) and NAME.yaml (its quickest "
                       "experiment's search space, trainable: NAME.py) in the current folder")  # fmt: skip
    new.add_argument("name", metavar="NAME", help="a Python module name (my_cnn)")
    new.add_argument("--like", metavar="TRAINABLE", default="cnn_classifier", help="the built-in trainable to copy "
                     "(default: cnn_classifier; see `tunelab list`)")  # fmt: skip


def _data_command(commands: _Commands) -> None:
    d = commands.add("data", None, "list, fetch or locate data sets")
    actions = _Commands(d.add_subparsers(dest="data_command", required=True, metavar="ACTION"), commands.roots)
    listing = actions.sub.add_parser("list", help="data sets and whether each is present", parents=[actions.roots])
    listing.set_defaults(func=_cmd_data_list)
    for name, func, help in (("fetch", _cmd_data_fetch, "copy a local copy or download a data set into the data root"),
                             ("path", _cmd_data_path, "print where a data set is read from")):  # fmt: skip
        actions.add(name, func, help).add_argument("dataset")


def own_service() -> None:
    """Forget a W&B service inherited from the process that started this command (a notebook's kernel that ran a
    search keeps one and passes it on in WANDB_SERVICE): this command's runs would live in the parent's service,
    which outlives a killed command and keeps its runs' files open, so that the resumed search's records of the
    same runs were lost. The command starts a service of its own, which ends with it."""
    os.environ.pop("WANDB_SERVICE", None)


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as a command, it keeps W&B to itself (own_service)
        own_service()
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        if args.debug:
            raise
        print(f"tunelab: error: {e}", file=sys.stderr)
        return 2
    except Failed as e:
        if args.debug:
            raise
        interrupted = e.status == Failed.INTERRUPTED
        print(("\n" if interrupted else "tunelab: error: ") + str(e), file=sys.stderr)
        return e.status
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:  # outside a search's trials (a search's own is a Failed that names its run)
        print("\ninterrupted", file=sys.stderr)
        return Failed.INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
