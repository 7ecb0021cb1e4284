"""FrechetAudioDistance and CLAPScore synced across 2 real processes (torch.distributed, gloo) equal the
single-process values on the same generations: what a DDP evaluation would report."""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ditto2.metrics.clap_score import CLAPScore
from ditto2.metrics.fad import FrechetAudioDistance

DIM = 8


def data():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(40, DIM, generator=g)
    fake = torch.randn(30, DIM, generator=g) * 1.3 + 0.4
    audio, text = torch.randn(30, DIM, generator=g), torch.randn(30, DIM, generator=g)
    return real, fake, audio, text


def single_process() -> tuple[float, float]:
    real, fake, audio, text = data()
    fad, clap = FrechetAudioDistance(DIM), CLAPScore()
    fad.update(real, real=True)
    fad.update(fake, real=False)
    clap.update(audio, text)
    return float(fad.compute()), float(clap.compute())


def _rank(rank: int, world: int, port: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        real, fake, audio, text = data()
        fad, clap = FrechetAudioDistance(DIM), CLAPScore()
        # uneven parts, as a DistributedSampler's last batch can leave them
        fad.update(real[rank::world], real=True)
        fad.update(fake[:17] if rank == 0 else fake[17:], real=False)
        clap.update(audio[:11] if rank == 0 else audio[11:], text[:11] if rank == 0 else text[11:])
        out[rank] = (float(fad.compute()), float(clap.compute()))  # compute() syncs the states across ranks
    finally:
        dist.destroy_process_group()


def test_two_processes_report_the_single_process_values():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_rank, args=(2, port, out), nprocs=2, join=True)
    fad, clap = single_process()
    for rank in (0, 1):
        assert abs(out[rank][0] - fad) < 1e-9 * max(1.0, fad), (out[rank], fad)
        assert abs(out[rank][1] - clap) < 1e-12, (out[rank], clap)
    # and a rank alone would have reported something else: the sync is what makes them equal
    real, fake, _, _ = data()
    alone = FrechetAudioDistance(DIM)
    alone.update(real[0::2], real=True)
    alone.update(fake[:17], real=False)
    assert abs(float(alone.compute()) - fad) > 1e-3
