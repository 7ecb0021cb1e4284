"""Known harmless framework warnings are silenced; anything else still reaches the terminal."""
import logging
import warnings

from ditto2.quiet import quiet


def test_quiet_filters_only_the_known_messages():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet()
        warnings.warn("Found 182 module(s) in eval mode at the start of training. This may lead to ...")
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", DeprecationWarning)
        warnings.warn("a real problem the user must see")
    assert [str(w.message) for w in caught] == ["a real problem the user must see"]
    assert logging.getLogger("pytorch_lightning.utilities.rank_zero").getEffectiveLevel() == logging.WARNING


def test_quiet_turns_off_the_hub_progress_bars(monkeypatch):
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    quiet()
    import os

    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
