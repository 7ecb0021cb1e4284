"""Network configs as frozen dataclasses that round-trip through JSON (bundle metadata, checkpoints)."""
from __future__ import annotations

import dataclasses


class JsonConfig:
    """``to_dict`` / ``from_dict`` for a dataclass: unknown keys (from newer or older bundles) are dropped, and
    lists come back as tuples where the field's default is a tuple (JSON has no tuples)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        out = {k: v for k, v in d.items() if k in fields}
        for k, v in out.items():
            if isinstance(fields[k].default, tuple) and isinstance(v, list):
                out[k] = tuple(v)
        return cls(**out)
