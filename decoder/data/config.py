"""Cohort configuration: a dataclass, with named presets stored as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from importlib import resources

from .._validation import check_choice
from .cortex import AnatomyConfig
from .encoding import NoiseConfig

PRESET_PREFIX = "cohort-"


@dataclass(frozen=True)
class CohortConfig:
    """Everything a cohort is built from; with the seed it fixes every bit."""

    name: str
    seed: int
    n_subjects: int
    sessions_per_subject: tuple[int, ...]
    n_test_images: int
    trials_per_session: int = 750
    repeats: int = 3
    runs_per_session: int = 12
    shared_train_fraction: float = 0.1
    image_size: int = 64
    observer_images: int = 4000
    observer_epochs: int = 8
    observer_width: int = 32
    observer_batch: int = 64
    anatomy: AnatomyConfig = field(default_factory=AnatomyConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)

    def __post_init__(self):
        if len(self.sessions_per_subject) != self.n_subjects:
            raise ValueError(
                f"sessions_per_subject: expected {self.n_subjects} entries (n_subjects), got {len(self.sessions_per_subject)}"
            )
        if self.image_size < 64:
            raise ValueError(f"image_size: expected >= 64, got {self.image_size}")

    @property
    def subject_ids(self) -> tuple[int, ...]:
        return tuple(range(1, self.n_subjects + 1))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CohortConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"cohort config: unknown keys {sorted(unknown)}")
        d = dict(d)
        d["sessions_per_subject"] = tuple(d["sessions_per_subject"])
        if isinstance(d.get("anatomy"), dict):
            a = dict(d["anatomy"])
            a["nsdgeneral_margin"] = tuple(a.get("nsdgeneral_margin", AnatomyConfig.nsdgeneral_margin))
            d["anatomy"] = AnatomyConfig(**a)
        if isinstance(d.get("noise"), dict):
            n = dict(d["noise"])
            for k in ("median_ncsnr", "roi_snr_factor"):
                if k in n:
                    n[k] = tuple(n[k])
            d["noise"] = NoiseConfig(**n)
        return cls(**d)


def preset_names() -> list[str]:
    files = resources.files("decoder.presets").iterdir()
    return sorted(f.name[len(PRESET_PREFIX) : -5] for f in files if f.name.startswith(PRESET_PREFIX) and f.name.endswith(".json"))


def load_preset(name: str) -> CohortConfig:
    """The named cohort preset (``demo``, ``smoke``)."""
    names = preset_names()
    check_choice("preset", name, names)
    text = resources.files("decoder.presets").joinpath(f"{PRESET_PREFIX}{name}.json").read_text()
    return CohortConfig.from_dict(json.loads(text))
