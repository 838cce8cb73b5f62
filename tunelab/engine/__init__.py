"""What runs: the Ray Tune search (search: sampler, ASHA, resources, callbacks; schedulers), one trial (trial),
the one writer of the trials' record (record), calibration of a time budget's plan (calibrate), the configs queued
first (priors) and imported (warmstart), a Ray cluster (cluster) and the retrain of the best configs (retrain).

May import: the base pieces of tunelab, tunelab.data, tunelab.trainable, tunelab.spec and tunelab.store.
"""
