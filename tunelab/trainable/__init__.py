"""The trainable protocol: what a model module (``trainables/`` or the user's own file) must and may have
(protocol), the epoch loop that builds and trains it (training), the checks every trainable passes on a tiny data set
(checks, ``tunelab check``) and ``tunelab new`` (scaffold).

May import: the base pieces of tunelab (errors, files, cache, progress, figures, tracking) and tunelab.data.
"""
