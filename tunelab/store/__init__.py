"""A run's files, read and written: its folder and options (runs), its Optuna study, the record of its trials
(study), the leaderboard derived from the study (leaderboard) and the Pareto ranking of several objectives (pareto).
No model is built here: a model's predictions come through tunelab.trainable, in tunelab.engine and tunelab.report.

May import: the base pieces of tunelab, tunelab.data and tunelab.spec.
"""
