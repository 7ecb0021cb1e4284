"""A small real MIDI file for the page's tests: C4 E4 G4 C5, 1.4 s each, 1.5 s apart, one piano track."""
from pathlib import Path


def write_midi(path: Path) -> Path:
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    inst.notes = [pretty_midi.Note(velocity=90, pitch=p, start=i * 1.5, end=i * 1.5 + 1.4)
                  for i, p in enumerate((60, 64, 67, 72))]
    midi.instruments.append(inst)
    midi.write(str(path))
    return path
