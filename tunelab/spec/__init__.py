"""An experiment: its search-space file read into a validated ``Spec`` (spaces), the rules of a trial's record
(rules: best epoch, end status), the plan of a search from a time budget (planner, pure) and ``tunelab describe``
(description).

May import: the base pieces of tunelab, tunelab.data and tunelab.trainable (a file's keys are checked against its
trainable's defaults).
"""
