"""Tag fields, the tag vocabulary (id 0 = null, for CFG dropout) and the paper's captions."""
from __future__ import annotations

import re
from dataclasses import dataclass

TAG_FIELDS = ("genre", "mood", "tempo_bucket")
NULL = "<null>"
TEMPO_BUCKETS = ((0, 80, "slow"), (80, 105, "moderate"), (105, 130, "upbeat"), (130, 1000, "fast"))


def tempo_bucket(bpm) -> str:
    if bpm in (None, ""):
        return ""
    bpm = float(bpm)
    for lo, hi, name in TEMPO_BUCKETS:
        if lo <= bpm < hi:
            return name
    return ""


def field_values(tags: dict) -> dict[str, str]:
    """The conditioning values of one clip's tags, derived fields included."""
    out = {"genre": str(tags.get("genre", "")), "mood": str(tags.get("mood", ""))}
    out["tempo_bucket"] = tempo_bucket(tags.get("tempo"))
    return out


def caption(tags: dict) -> str:
    """Paper §4.3: "A [mood] [genre] song at [tempo] beats per minute." (missing parts dropped)."""
    words = " ".join(w for w in (tags.get("mood"), tags.get("genre")) if w)
    lead = "An" if words[:1].lower() in tuple("aeiou") else "A"
    text = f"{lead} {words} song" if words else "A song"
    if tags.get("tempo") not in (None, ""):
        text += f" at {int(round(float(tags['tempo'])))} beats per minute"
    return text + "."


def caption_bpm(text: str):
    """The tempo a caption names ("... at 72 beats per minute." -> 72.0), or None when it names none."""
    match = re.search(r"(\d+(?:\.\d+)?) beats per minute", str(text))
    return float(match.group(1)) if match else None


@dataclass
class TagVocab:
    values: dict[str, list[str]]  # field -> [NULL, v1, v2, ...]

    @classmethod
    def build(cls, tag_dicts) -> "TagVocab":
        seen = {f: set() for f in TAG_FIELDS}
        for tags in tag_dicts:
            for f, v in field_values(tags).items():
                if v:
                    seen[f].add(v)
        return cls({f: [NULL] + sorted(seen[f]) for f in TAG_FIELDS})

    @property
    def sizes(self) -> list[int]:
        return [len(self.values[f]) for f in TAG_FIELDS]

    def encode(self, tags: dict) -> list[int]:
        """Unknown or missing values map to the null id 0."""
        fv = field_values(tags)
        return [self.values[f].index(fv[f]) if fv[f] in self.values[f] else 0 for f in TAG_FIELDS]

    def decode(self, ids) -> dict[str, str]:
        return {f: self.values[f][int(i)] for f, i in zip(TAG_FIELDS, ids)}

    def to_dict(self) -> dict:
        return {"fields": list(TAG_FIELDS), "values": self.values}

    @classmethod
    def from_dict(cls, d: dict) -> "TagVocab":
        return cls({f: list(d["values"][f]) for f in TAG_FIELDS})
