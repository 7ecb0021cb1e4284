import pytest

from ditto2.audio.mel import mel_preset
from ditto2.data.shards import ShardOptions, build_shards
from ditto2.data.sources.synth import synth_tracks


def _synth_shards(tmp_path_factory, preset: str, n_tracks: int):
    out = tmp_path_factory.mktemp(f"synth-{preset}")
    build_shards(synth_tracks(n_tracks, seed=11, duration_s=13.0), out, mel_preset(preset), ShardOptions(), progress=False)
    return out


@pytest.fixture(scope="session")
def synth_tiny(tmp_path_factory):
    return _synth_shards(tmp_path_factory, "tiny", 6)


@pytest.fixture(scope="session")
def synth_paper(tmp_path_factory):
    return _synth_shards(tmp_path_factory, "paper", 3)
