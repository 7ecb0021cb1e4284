"""The ITO options beyond the paper's loop, by name: each one's "off" value and the settings that only mean something
beside it. One list read by the config's per-control defaults, the run summaries, the bench's cells and the defaults'
rows, so the next option is added here and in ``ITOConfig`` (and ``optimize_noise`` / ``ITOModule``), not in five lists.
"""
from __future__ import annotations

from typing import Mapping

# option -> the value that turns it off (the default)
OFF = {
    "envelope_weight": 0.0,  # keep the output's spectral envelope up to a level (ito.optimize.envelope_change)
    "anchor_weight": 0.0,  # keep z near its start (ito.optimize.anchor_distance)
    "start_candidates": 1,  # best-of-n start (ito.optimize.best_start)
    "optimizer": "adam",  # the noise's optimizer (ito.optimizers)
    "smooth_sigma": 0.0,  # randomized smoothing of the control (ito.optimize.smoothing_noise)
    "teacher_weight": 0.0,  # the teacher prior (ito.optimize.teacher_distance)
    "update_pool": 1,  # the noise moves only in coarse blocks (ito.optimize.pooled_gradient)
}
# option -> settings carried along only while it is on
WITH = {"teacher_weight": ("teacher_sigma",)}


def is_on(values: Mapping, name: str) -> bool:
    """Whether ``values`` (a config as a mapping, a summary or a table row) has option ``name`` on; a missing or null
    value is off."""
    value = values.get(name)
    return value is not None and value != OFF[name]


def options_on(values: Mapping) -> dict:
    """The options that are on in ``values``, with their companion settings: what a summary or a table row records and
    what a row stands for when it becomes a default (a run without an option ran with it off)."""
    out = {}
    for name in OFF:
        if is_on(values, name):
            out[name] = values[name]
            out.update({k: values[k] for k in WITH.get(name, ())})
    return out


def all_options(values) -> dict:
    """Every option and companion setting of a config object, on or off (what a per-control default hands on)."""
    names = [n for name in OFF for n in (name, *WITH.get(name, ()))]
    return {n: getattr(values, n) for n in names}
