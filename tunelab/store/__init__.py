"""A run's files, read and written: its folder and options (runs), its Optuna study, the record of its trials
(study), the leaderboard derived from the study (leaderboard), the Pareto ranking of several objectives (pareto) and
a retrain's tables (retrained).
No model is built here: a model's predictions come through tunelab.trainable, in tunelab.engine and tunelab.report.

May import: the base pieces of tunelab, tunelab.data and tunelab.spec.
"""
