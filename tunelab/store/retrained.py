"""A retrain's results as people read them: mean ± std of each test metric over seeds per rank, the ensemble, and
what a student would try first beside them."""

import pandas as pd

from tunelab.store.runs import StoredRun


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std of each test metric over seeds, per rank (``models``: how many seeds completed)."""
    done = table[table["status"] == "completed"]
    tests = [c for c in table if c.startswith("test_")]
    rows = []
    for (rank, trial_id), group in done.groupby(["rank", "trial_id"]):
        row = {"rank": rank, "trial_id": trial_id, "models": len(group)}
        for c in tests:
            row[c] = f"{group[c].mean():.4f} ± {group[c].std(ddof=1) if len(group) > 1 else 0:.4f}"
        rows.append(row)
    return pd.DataFrame(rows)


def table(run: StoredRun) -> pd.DataFrame:
    """``summary`` of the run's retrain, with the ensemble (if tested) as a last row, rank ``ensemble``."""
    ranks, ensemble = summary(run.retrain_table()), run.ensemble_table()
    if ensemble is None:
        return ranks
    row = ensemble.iloc[0]
    tests = {c: f"{row[c]:.4f}" for c in ensemble if c.startswith("test_")}
    below = {"rank": "ensemble", "trial_id": "all", "models": row["members"], **tests}
    return pd.concat([ranks, pd.DataFrame([below])])


def first_try(run: StoredRun, retrained: pd.DataFrame) -> pd.DataFrame | None:
    """What a student would try first (the classical baseline, if the retrain tested one) beside what the search
    found (``retrained``: the run's ``table``): the best config's mean ± std over seeds and the ensemble's, in the
    baseline's test metrics."""
    baseline = run.baseline_table()
    if baseline is None:
        return None
    metrics = [c for c in baseline if c.startswith("test_")]
    rows = [{"model": baseline["model"].iloc[0], **{m: f"{baseline[m].iloc[0]:.4f}" for m in metrics}}]
    for _, row in retrained.iterrows():
        if row["rank"] == 1:
            seeds = f"{row['models']} seed{'s' if row['models'] > 1 else ''}"
            label = f"{run.spec.trainable_name}, best config (trial {row['trial_id']}): mean ± std of {seeds}"
        elif row["rank"] == "ensemble":
            label = f"ensemble of all {row['models']} retrained models"
        else:
            continue
        rows.append({"model": label, **{m: row.get(m, "") for m in metrics}})
    return pd.DataFrame(rows)
