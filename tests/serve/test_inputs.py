"""What a person types on the page -> targets: known curves and melodies, and one-line errors for bad input."""
import numpy as np
import pytest

from ditto2.controls import ControlTargetError
from ditto2.serve.inputs import intensity_shapes, notes_values, page_targets, parse_notes, points_curve

SECONDS, FRAMES = 5.944, 256


def test_points_are_linear_between_and_flat_beyond():
    curve = np.array(points_curve("1:-30, 3:-10", 4.0, 8))  # frames at 0, 0.5, ..., 3.5 s
    assert curve.tolist() == [-30, -30, -30, -25, -20, -15, -10, -10]
    assert points_curve("2:-20", 4.0, 4) == [-20.0] * 4  # one point: flat
    assert points_curve("3:-10\n1:-30", 4.0, 8) == curve.tolist()  # any order, newlines too


@pytest.mark.parametrize("text, message", [("", "give points"), ("0-30", "is not seconds:dB"),
                                           ("9:-20", "outside the clip"), ("1:-90", "outside -80 to 0 dB"),
                                           ("1:5", "outside -80 to 0 dB")])
def test_bad_points_say_what_is_wrong(text, message):
    with pytest.raises(ControlTargetError, match=message):
        points_curve(text, 4.0, 8)


def test_every_preset_shape_parses_over_the_clip():
    for name, text in intensity_shapes(SECONDS).items():
        curve = points_curve(text, SECONDS, FRAMES)
        assert len(curve) == FRAMES and -80 <= min(curve) <= max(curve) <= 0, name
    rise = points_curve(intensity_shapes(SECONDS)["crescendo"], SECONDS, FRAMES)
    assert rise[0] == -35 and rise[-1] > -15.2 and np.all(np.diff(rise) >= 0)


def test_notes_become_pitch_classes_in_proportion_to_their_lengths():
    assert parse_notes("C4 F#3 Bb - G:2 rest") == [(0, 1.0), (6, 1.0), (10, 1.0), (-1, 1.0), (7, 2.0), (-1, 1.0)]
    assert parse_notes("B#4 Cb") == [(0, 1.0), (11, 1.0)]  # enharmonics wrap around the octave
    values = notes_values("C E:2 -", 8)  # lengths 1, 2, 1 of 4 -> 2, 4, 2 frames
    assert values == [0, 0, 4, 4, 4, 4, -1, -1]


@pytest.mark.parametrize("text, message", [("", "type notes"), ("H2", "is not a note"), ("- r", "only rests"),
                                           ("C:0", "has no length")])
def test_bad_notes_say_what_is_wrong(text, message):
    with pytest.raises(ControlTargetError, match=message):
        parse_notes(text)


def test_page_targets_per_control(tmp_path):
    page = {"intensity_points": "0:-30, 5:-10", "melody_notes": "C D E", "form": "abba", "caption": " A calm song. "}
    both = page_targets("intensity+melody", page, SECONDS, FRAMES, tmp_path)
    assert set(both) == {"intensity", "melody"} and len(both["intensity"]["values"]) == FRAMES
    assert set(both["melody"]["values"]) == {0, 2, 4}
    assert page_targets("structure", page, SECONDS, FRAMES, tmp_path) == {"structure": {"form": "ABBA"}}
    assert page_targets("text", page, SECONDS, FRAMES, tmp_path) == {"text": {"captions": ["A calm song."]}}
    song = tmp_path / "mine.wav"
    song.write_bytes(b"RIFF")  # content is the control's business; the page only keeps a copy beside the run
    got = page_targets("outpainting", {"recording": str(song), "offset": 1.5}, SECONDS, FRAMES, tmp_path / "run")
    assert got == {"outpainting": {"path": str(tmp_path / "run" / "upload-mine.wav"), "offset": 1.5}}
    assert (tmp_path / "run" / "upload-mine.wav").read_bytes() == b"RIFF"


@pytest.mark.parametrize("control, page, message", [
    ("structure", {"form": "AAAA"}, "at least two kinds"), ("structure", {"form": "A-B"}, "2 to 16 letters"),
    ("inpainting", {}, "upload a file first"), ("inpainting", {"recording": "/no/such.wav"}, "is gone"),
    ("text", {"caption": "  "}, "type a caption"), ("melody", {"melody_notes": "C", "offset": -1}, ">= 0 seconds"),
    ("loudness", {}, "unknown control")])
def test_bad_page_input_fails_before_compute(control, page, message, tmp_path):
    with pytest.raises(ControlTargetError, match=message):
        page_targets(control, page, SECONDS, FRAMES, tmp_path)


def test_the_curve_preview_draws_parsed_points_and_waits_on_bad_ones():
    from ditto2.serve.app import curve_preview

    fig = curve_preview("0:-35, 5.9:-15", SECONDS)
    (line, dots) = fig.axes[0].lines
    assert len(line.get_xdata()) == 256 and list(dots.get_ydata()) == [-35, -15]
    assert curve_preview("0:-35, 5.9", SECONDS) is None  # half-typed: no error, no figure
