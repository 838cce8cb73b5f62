"""The command line: tunelab list | plan | search | resume | leaderboard | dashboard | retrain | report | describe |
compare | check | new | data."""

import argparse
import math
import os
import re
import sys

from tunelab import Failed, UserError, __version__


def _cmd_list(args) -> None:
    from tunelab import protocol, spaces

    print("Experiments (search_spaces/):")
    for name, path in spaces.experiments().items():
        try:
            spec = spaces.load(name)
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


def _run(args):
    from tunelab import runs

    return runs.open_run(args.run, runs.results_root(args.results_dir))


def _fixed(args) -> dict:
    """The flags a plan keeps (tunelab.plan.FLAGS), as the user gave them."""
    from tunelab import plan

    return {k: getattr(args, k) for k in plan.FLAGS if getattr(args, k) is not None}


def _cmd_plan(args) -> None:
    from tunelab import calibrate, data, runs, spaces

    options = runs.Options(
        trials=args.trials, max_epochs=args.max_epochs, time_budget=args.time_budget,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
    )  # fmt: skip
    if not args.time_budget:
        raise UserError("tunelab plan needs --time-budget (90s, 20m, 1.5h): the time to plan the search for")
    spec = options.apply(spaces.load(args.experiment))
    plan = calibrate.plan_for(spec, data.data_root(args.data_dir), _fixed(args), args.retrain_budget)
    print("\n".join(plan.lines()))


def _cmd_search(args) -> None:
    from tunelab import calibrate, cluster, data, runs, search, spaces, tracking, warmstart

    if args.retrain_budget and not args.time_budget:
        raise UserError("--retrain-budget goes with --time-budget: it limits the configs a planned search tries")

    options = runs.Options(
        trials=args.trials, max_epochs=args.max_epochs, time_budget=args.time_budget,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, seed=args.seed,
        concurrency=args.concurrency, subset=args.subset or 1.0, address=cluster.address(args.address),
        storage=cluster.storage(args.storage), wandb=args.wandb, warm_start=args.warm_start or [],
        no_priors=args.no_priors,
    )  # fmt: skip
    spec = options.apply(spaces.load(args.experiment))
    folder = runs.results_root(args.results_dir) / (args.name or spec.name)
    run = runs.Run(folder, spec, options, data.data_root(args.data_dir))
    with run.locked("search"):  # checked under the lock: a search that held it may have written the folder
        search.check_unused(run)
        if search.started(run):
            raise UserError(f"{run.experiment_path} already holds a search; continue it with "
                            f"`tunelab resume {folder.name}`, or start another with --name")
        # --time-budget plans the search (calibration counts in it); a file's time_budget_s only stops it
        if args.time_budget:
            tracking.mode(options.wandb)  # a mode or an earlier run that cannot work is refused before calibration
            warmstart.check(run)
            run = calibrate.apply(run, calibrate.plan_for(spec, run.data_dir, _fixed(args), args.retrain_budget))
            print("\n".join(run.plan.lines()), flush=True)
        _finish(run, search.search(run))


def _cmd_resume(args) -> None:
    import dataclasses

    from tunelab import cluster, search, study, tracking

    run = _run(args)
    if args.wandb:
        tracking.mode(args.wandb)  # a mode that cannot work is refused before it is saved with the run
    given = {k: v for k, v in {"storage": cluster.storage(args.storage), "wandb": args.wandb}.items() if v}
    if args.address or os.environ.get("RAY_ADDRESS"):
        given["address"] = cluster.address(args.address)  # None for "local": a Ray of the search's own
    run.options = dataclasses.replace(run.options, **given)
    with run.locked("resume"):
        if not search.started(run):  # checked before a moved storage is saved with the run
            raise UserError(f"{run.experiment_path} holds no search to continue (no state of Ray's there)"
                            + ("; give --storage where the search's trials are" if args.storage else ""))
        study.check(run.study_file, run.spec.argument)
        if given:
            run.save()
        _finish(run, search.resume(run))


def _finish(run, board) -> None:
    from tunelab import leaderboard, search

    print("\n" + leaderboard.render(board, run, top=5))
    print(f"\nLeaderboard: {run.leaderboard_file}")
    if run.best_file.is_file():
        print(f"Best config: {run.best_file}")
    unfinished = board["status"].isin(["pending", "interrupted"]).sum() if len(board) else 0
    if unfinished:
        print(f"\n{unfinished} trial(s) did not finish: `tunelab resume {run.name}` continues the search")
    warning = search.outcome(run, board)
    if warning:
        print(warning, file=sys.stderr)


def _cmd_leaderboard(args) -> None:
    from tunelab import files, leaderboard

    run = _run(args)
    files.writable(run.dir)
    print(leaderboard.render(leaderboard.write(run), run, top=args.top))


def _cmd_dashboard(args) -> None:
    from tunelab import dashboard, runs

    storage, shown = dashboard.storage_of(runs.results_root(args.results_dir), args.run)

    def ready(address: str) -> None:
        print(f"optuna-dashboard of {shown}: {address}\nCtrl-C stops it.", flush=True)

    dashboard.serve(storage, args.port, ready)


def _cmd_retrain(args) -> None:
    from tunelab import retrain

    run = _run(args)
    with run.locked("retrain"):
        table = retrain.retrain(run, args.top_k, args.seeds, args.epochs, args.wandb, args.subset, args.ensemble)
    print("\n" + table.to_markdown(index=False, floatfmt=".4f"))
    print(f"\nRetrain results: {run.retrain_file}")
    ensemble = run.ensemble_table()
    if ensemble is not None:
        row = ensemble.iloc[0]
        print(f"Ensemble (the mean probabilities of {row['members']} models: {row['models']}): {run.ensemble_file}")
    first_try = retrain.first_try(run, table)
    if first_try is not None:
        print("\nWhat a student would try first:\n\n" + first_try.to_markdown(index=False))
        print(f"\nBaseline: {run.baseline_file}")
    warning = retrain.outcome(run)
    if warning:
        print(warning, file=sys.stderr)


def _cmd_report(args) -> None:
    from tunelab import report

    run = _run(args)
    with run.locked("report"):
        print(f"Report: {report.write(run, wandb=args.wandb)}")


def _cmd_describe(args) -> None:
    from tunelab import data, describe

    print(describe.describe(args.trainable, args.config, args.dataset, data.data_root(args.data_dir)))


def _cmd_compare(args) -> None:
    from tunelab import compare, runs

    root = runs.results_root(args.results_dir)
    out, result = compare.compare([runs.open_run(name, root) for name in (args.run_a, args.run_b, *args.more)], root)
    if result.table is not None:
        print((out / "auc.md").read_text())
    for caption, path in result.figures.items():
        print(f"{caption}:\n  {path}")
    if result.table is not None:
        print(f"Table: {out / 'auc.csv'}")


def _cmd_check(args) -> None:
    from tunelab import checks

    def report(result) -> None:
        if result.check == "protocol":
            print(f"Checking {args.trainable} on a tiny data set shaped like its DATASET's:")
        print(f"  {result.check:14s} " + str(result).replace("\n", "\n" + " " * 17), flush=True)

    trainable, results = checks.run(args.trainable, report)
    failed = [r.check for r in results if r.failed]
    if failed:
        raise UserError(f"{args.trainable}: {len(failed)} of {len(results)} checks failed: {', '.join(failed)}")
    print(f"All {len(results)} checks passed ({checks.describe_data(checks.tiny_data(trainable))}).")


def _cmd_new(args) -> None:
    from tunelab import scaffold

    py, space, experiment = scaffold.new(args.name, args.like)
    print(f"Wrote {py} (a copy of trainables/{args.like}.py) and {space} (a copy of search_spaces/{experiment}.yaml, "
          f"with trainable: {py.name}). Next:")  # fmt: skip
    print(f"  edit {py} (the model, DEFAULTS) and {space} (what to search)")
    print(f"  tunelab check {py}")
    print(f"  tunelab search {space} --time-budget 10m   (planned for this machine; tunelab plan shows the plan)")


def _number(kind: type = int, low: float = 1, strict: bool = False):
    """An argparse type: an integer (or a number) >= ``low``, or > ``low`` where ``strict``."""
    what = "an integer" if kind is int else "a number"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {what} {'>' if strict else '>='} {low:g}, not {text}")
        return value

    return parse


DURATION = "seconds (90) or a number with s, m or h (90s, 20m, 1.5h)"


def _duration(text: str) -> float:
    """A time budget in seconds: plain seconds, or a number with the unit s, m or h."""
    found = re.fullmatch(r"\s*(\d+\.?\d*|\.\d+)\s*([smh]?)\s*", text)
    if not found:
        raise argparse.ArgumentTypeError(f"must be a duration: {DURATION}, not {text!r}")
    value = float(found[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[found[2]]
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a duration > 0: {DURATION}, not {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _number(float, 0, strict=True)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], not {text}")
    return value


def _seed(text: str) -> int:
    """A seed of the sampler and the trials, as a search-space file's seed."""
    from tunelab import spaces

    value = _number(int, 0)(text)
    if value >= spaces.SEEDS:
        raise argparse.ArgumentTypeError(f"must be below 2**32 ({spaces.SEEDS}), not {text}")
    return value


def _gpus(text: str) -> float:
    """GPUs per trial: 0, a fraction of one GPU (trials share it) or a whole number of GPUs."""
    from tunelab import spaces

    value = _number(float, 0)(text)
    if not spaces.gpus_ok(value):
        raise argparse.ArgumentTypeError(f"must be {spaces.GPUS}, not {text}")
    return value


def _run_name(text: str) -> str:
    """A run's name: its results folder, W&B group and study, so one plain folder name."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", text):
        raise argparse.ArgumentTypeError(f"must be a folder name of letters, digits, '.', '_' and '-' that starts with "
                                         f"a letter or a digit, not {text!r}")  # fmt: skip
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunelab",
                                description="Hyperparameter search for course-assignment models on Ray Tune.")
    p.add_argument("--version", action="version", version=f"tunelab {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    roots = argparse.ArgumentParser(add_help=False)  # accepted before or after the command
    for parser_, default in ((p, None), (roots, argparse.SUPPRESS)):
        parser_.add_argument("--data-dir", default=default, help="data root (default: $TUNELAB_DATA or ./datasets)")
        parser_.add_argument("--results-dir", default=default,
                             help="results root (default: $TUNELAB_RESULTS or ./results)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, func, help):
        c = sub.add_parser(name, help=help, description=help, parents=[roots])
        c.set_defaults(func=func)
        return c

    command("list", _cmd_list, "list experiments, trainables and data sets")
    command("doctor", _cmd_doctor, "the Python, Ray, Optuna, torch and W&B versions tunelab runs with, each against "
            "its tested range (exit 1 outside it), the data root and the W&B mode")  # fmt: skip
    pl = command("plan", _cmd_plan, "print the plan of a search within a time budget (trials, epochs, ASHA's rungs, "
                 "data fraction, concurrency, retrain) without running it; it times a short calibration")  # fmt: skip
    s = command("search", _cmd_search, "run a hyperparameter search for an experiment (planned to fit its time "
                "budget where it has one)")  # fmt: skip
    positive = _number(float, 0, strict=True)
    for c in (pl, s):
        c.add_argument("experiment", help="a file name in search_spaces/ (without .yaml) or a path to a YAML file")
        c.add_argument("--time-budget", type=_duration, metavar="T", help="plan the search to end within T (90s, 20m, "
                       "1.5h; plain seconds), calibration included; it stops when T is up, with results so far kept")
        c.add_argument("--retrain-budget", type=_duration, metavar="T", help="with --time-budget: try only configs "
                       "whose retrain (one seed, the planned epochs, all the data) is expected within T (default: "
                       "the --time-budget)")  # fmt: skip
        c.add_argument("--trials", type=_number(), help="number of trials (default: planned, else the file's run_cap)")
        c.add_argument("--max-epochs", type=_number(), help="epochs per trial (default: planned, else the file's)")
        c.add_argument("--cpus-per-trial", type=positive, metavar="C", help="CPUs per trial (also torch's threads)")
        c.add_argument("--gpus-per-trial", type=_gpus, metavar="G",
                       help="GPUs per trial; fractions pack trials on one GPU")
        c.add_argument("--concurrency", type=_number(), metavar="K",
                       help="at most K trials at once (default: planned, else as many as fit)")
        c.add_argument("--subset", type=_fraction, metavar="F",
                       help="train on a fraction F of the data (default: planned, else all of it)")
    s.add_argument("--seed", type=_seed, help="seed of the sampler and the trials")
    s.add_argument("--name", type=_run_name, metavar="RUN",
                   help="name of the run's results folder (default: the experiment)")
    s.add_argument("--address", help="an existing Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    s.add_argument("--storage", metavar="PATH|URI", help="where Ray keeps the trials and checkpoints: a shared file "
                   "system or a bucket (s3://..., gs://...) that every node reaches; needed on a multi-node cluster "
                   "(default: the results folder)")  # fmt: skip
    s.add_argument("--warm-start", type=_run_name, nargs="+", metavar="RUN", help="start the sampler from the "
                   "finished trials of earlier runs of the same trainable and data set (those outside this search's "
                   "space are dropped); they are not this run's trials and do not count in --trials")  # fmt: skip
    s.add_argument("--no-priors", action="store_true", help="do not evaluate the file's priors (configs that did "
                   "well in earlier searches of the experiment) first, after its baseline")  # fmt: skip
    res = command("resume", _cmd_resume, "continue an interrupted search")
    res.add_argument("--address", help="the Ray cluster to continue on (default: $RAY_ADDRESS, else the search's)")
    res.add_argument("--storage", metavar="PATH|URI", help="the search's --storage, if its contents have moved")
    lb = command("leaderboard", _cmd_leaderboard,
                 "show a run's leaderboard (from its trials so far: also while it runs)")
    lb.add_argument("--top", type=_number(), default=10, metavar="K")
    dash = command("dashboard", _cmd_dashboard, "watch a run's Optuna study (trials, learning curves, importances) "
                   "in optuna-dashboard on 127.0.0.1, while its search runs and after; Ctrl-C stops it")  # fmt: skip
    dash.add_argument("run", metavar="RUN", nargs="?", help="the run (default: every run under the results root)")
    dash.add_argument("--port", type=_number(), help="the port to serve on (default: a free one)")
    r = command("retrain", _cmd_retrain, "retrain the best config(s) on train+validation and test them")
    r.add_argument("--top-k", type=_number(), default=1, metavar="K", help="retrain the K best configs")
    r.add_argument("--seeds", type=_number(), default=3, metavar="S", help="seeds per config")
    r.add_argument("--epochs", type=_number(), metavar="E",
                   help="epochs (default: the plan's retrain epochs, else the search's max epochs)")
    r.add_argument("--subset", type=_fraction, metavar="F", help="train on a fraction F of train+validation (default: "
                   "all of it after a planned search, else the search's --subset; 1 for all of it)")  # fmt: skip
    r.add_argument("--ensemble", action="store_true", help="also test the mean of all K x S models' predicted "
                   "class probabilities (classifiers)")  # fmt: skip
    rep = command("report", _cmd_report, "write the run's report: figures, report.md and report.html")
    for c in (res, lb, r, rep):
        c.add_argument("run", metavar="RUN", help="the run (the experiment's name unless search had --name)")
    for c in (s, res, r, rep):
        c.add_argument("--wandb", choices=["online", "offline", "disabled"],
                       help="W&B mode (default: online with an API key, else offline)")

    desc = command("describe", _cmd_describe,
                   "a trainable's layers: every intermediate shape, parameters per layer and in total")
    desc.add_argument("trainable", help="a trainable (see `tunelab list`), a module or a Python file")
    desc.add_argument("--config", metavar="FILE", help="YAML of hyperparameters (or a run's best.yaml)")
    desc.add_argument("--dataset", help="the data set that sizes the model (default: the trainable's)")
    cmp = command("compare", _cmd_compare, "runs' retrained models side by side: ROC curves and AUCs of classifiers, "
                                           "reconstructions of the same test images, samples")  # fmt: skip
    cmp.add_argument("run_a", metavar="RUN_A")
    cmp.add_argument("run_b", metavar="RUN_B")
    cmp.add_argument("more", metavar="RUN", nargs="*", help="more runs, on the same data set")

    chk = command("check", _cmd_check, "run the registry's tests on a trainable (your own file) on a tiny data set: "
                  "the protocol, build, train_epoch, evaluate, gradients, save/restore and figures")  # fmt: skip
    chk.add_argument("trainable", metavar="FILE.py", help="a Python file (or a registered trainable or a module)")
    new = command("new", _cmd_new, "write NAME.py (a built-in trainable's source) and NAME.yaml (its quickest "
                                   "experiment's search space, trainable: NAME.py) in the current folder")  # fmt: skip
    new.add_argument("name", metavar="NAME", help="a Python module name (my_cnn)")
    new.add_argument("--like", metavar="TRAINABLE", default="cnn_classifier", help="the built-in trainable to copy "
                     "(default: cnn_classifier; see `tunelab list`)")  # fmt: skip

    d = command("data", None, "list, fetch or locate data sets")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    listing = dsub.add_parser("list", help="data sets and whether each is present", parents=[roots])
    listing.set_defaults(func=_cmd_data_list)
    for name, func, help in (("fetch", _cmd_data_fetch, "copy a local copy or download a data set into the data root"),
                             ("path", _cmd_data_path, "print where a data set is read from")):  # fmt: skip
        c = dsub.add_parser(name, help=help, description=help, parents=[roots])
        c.add_argument("dataset")
        c.set_defaults(func=func)
    return p


def main(argv: list[str] | None = None) -> int:
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
