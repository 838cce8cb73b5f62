"""What a run shows: the report (report, with its sections ablation and analysis), retrained models side by side
(comparison, ``tunelab compare``) and ``tunelab dashboard`` (dashboard, optuna-dashboard over the runs' studies).
Models are reached through tunelab.trainable's protocol, never by importing trainables.

May import: the base pieces of tunelab, tunelab.data, tunelab.trainable, tunelab.spec and tunelab.store.
"""
