"""An NSD-like experimental design.

* Sessions of 750 trials in 12 runs; every image is shown 3 times.
* A shared test set (NSD's shared1000) is seen by every subject.
* About 90% of each subject's training images are its own; the rest come
  from a pool that several subjects see.
* Presentations are spread over the sessions in chronological order (a
  random permutation of all presentations, chopped into sessions), so the
  first session is a meaningful "1 hour" subset with some first and some
  repeated presentations, as in NSD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRIAL_FIELDS = (
    ("subject", np.int16),
    ("session", np.int16),  # 1-based
    ("run", np.int16),  # 1-based within the session
    ("trial", np.int16),  # 1-based within the run
    ("global_trial", np.int32),  # row in the betas array
    ("image_id", np.int32),
    ("repeat", np.int8),  # 0, 1, 2: which presentation of the image
    ("is_test", np.bool_),
)
TRIAL_DTYPE = np.dtype(list(TRIAL_FIELDS))


@dataclass(frozen=True)
class ImagePlan:
    """Which images each subject sees. Ids are global SimCOCO image ids."""

    test_ids: np.ndarray  # (n_test,)
    train_ids: dict[int, np.ndarray]  # subject -> (n_train_s,)

    @property
    def all_ids(self) -> np.ndarray:
        return np.unique(np.concatenate([self.test_ids, *self.train_ids.values()]))


def n_train_images(n_sessions: int, n_test: int, trials_per_session: int, repeats: int) -> int:
    total_images, rem = divmod(n_sessions * trials_per_session, repeats)
    if rem:
        raise ValueError(f"trials_per_session * n_sessions must be divisible by repeats={repeats}; got {n_sessions} x {trials_per_session}")
    n_train = total_images - n_test
    if n_train <= 0:
        raise ValueError(f"{n_sessions} sessions hold {total_images} images, not more than the {n_test} test images")
    return n_train


def plan_images(
    sessions: dict[int, int], n_test: int, trials_per_session: int, repeats: int,
    shared_fraction: float, rng: np.random.Generator,
) -> ImagePlan:
    """Test ids first (0..n_test-1), then a shared training pool, then each
    subject's own images, in consecutive id ranges."""
    n_train = {s: n_train_images(n, n_test, trials_per_session, repeats) for s, n in sessions.items()}
    n_shared = {s: int(round(shared_fraction * n)) for s, n in n_train.items()}
    pool_size = max(1, int(round(2 * np.mean(list(n_shared.values())))))  # each pool image seen by ~half the cohort
    pool = np.arange(n_test, n_test + pool_size)
    next_id = n_test + pool_size
    train: dict[int, np.ndarray] = {}
    for s in sorted(sessions):
        own = np.arange(next_id, next_id + n_train[s] - n_shared[s])
        next_id += own.size
        shared = rng.choice(pool, size=min(n_shared[s], pool_size), replace=False)
        train[s] = np.sort(np.concatenate([own, shared]))
    return ImagePlan(test_ids=np.arange(n_test), train_ids=train)


def trial_table(
    subject: int, train_ids: np.ndarray, test_ids: np.ndarray, n_sessions: int,
    trials_per_session: int, repeats: int, runs_per_session: int, rng: np.random.Generator,
) -> np.ndarray:
    """Chronological trial table (structured array, TRIAL_DTYPE)."""
    images = np.concatenate([train_ids, test_ids])
    presentations = rng.permutation(np.repeat(images, repeats))  # (n_sessions * trials_per_session,)
    if presentations.size != n_sessions * trials_per_session:
        raise ValueError("image plan does not fill the sessions exactly")
    table = np.zeros(presentations.size, dtype=TRIAL_DTYPE)
    table["subject"] = subject
    table["global_trial"] = np.arange(presentations.size)
    table["image_id"] = presentations
    table["session"] = np.arange(presentations.size) // trials_per_session + 1
    in_session = np.arange(presentations.size) % trials_per_session
    run_edges = np.cumsum([len(c) for c in np.array_split(np.arange(trials_per_session), runs_per_session)])
    run = np.searchsorted(run_edges, in_session, side="right")  # 0-based
    run_start = np.concatenate([[0], run_edges])[run]
    table["run"] = run + 1
    table["trial"] = in_session - run_start + 1
    table["repeat"] = _occurrence_index(presentations)
    table["is_test"] = np.isin(presentations, test_ids)
    return table


def _occurrence_index(values: np.ndarray) -> np.ndarray:
    """For each element, how many times its value occurred before it."""
    order = np.argsort(values, kind="stable")
    sorted_vals = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    counts = np.diff(np.r_[starts, sorted_vals.size])
    occ_sorted = np.arange(sorted_vals.size) - np.repeat(starts, counts)
    occ = np.empty_like(occ_sorted)
    occ[order] = occ_sorted
    return occ
