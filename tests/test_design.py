import numpy as np
import pytest

from decoder.data.design import plan_images, trial_table


def make(sessions={1: 4, 2: 4, 3: 3}, n_test=100):
    rng = np.random.default_rng(0)
    plan = plan_images(sessions, n_test, 750, 3, 0.1, rng)
    tables = {s: trial_table(s, plan.train_ids[s], plan.test_ids, n, 750, 3, 12, rng) for s, n in sessions.items()}
    return plan, tables


def test_each_image_three_times_in_sessions_of_750_and_12_runs():
    plan, tables = make()
    for s, t in tables.items():
        _, counts = np.unique(t["image_id"], return_counts=True)
        assert np.all(counts == 3)
        assert np.all(np.bincount(t["session"])[1:] == 750)
        assert t["run"].min() == 1 and t["run"].max() == 12
        assert t["trial"].min() == 1 and t["trial"].max() == 63
        assert np.array_equal(t["global_trial"], np.arange(len(t)))


def test_repeats_are_chronological():
    _, tables = make()
    t = tables[1]
    for img in np.unique(t["image_id"])[:50]:
        rows = np.flatnonzero(t["image_id"] == img)
        assert list(t["repeat"][rows]) == [0, 1, 2]


def test_shared_test_set_and_mostly_unique_training_images():
    plan, tables = make()
    for s, t in tables.items():
        assert set(t["image_id"][t["is_test"]]) == set(plan.test_ids)
    others = lambda s: set(np.concatenate([plan.train_ids[o] for o in plan.train_ids if o != s]))
    for s in plan.train_ids:
        unique = 1 - len(set(plan.train_ids[s]) & others(s)) / len(plan.train_ids[s])
        assert 0.85 <= unique <= 0.95


def test_first_session_is_a_chronological_subset():
    _, tables = make()
    t = tables[1]
    first = t[t["session"] == 1]
    assert len(first) == 750 and first["global_trial"].max() == 749
    assert (first["repeat"] == 0).mean() > 0.5


def test_sessions_must_hold_the_test_set():
    with pytest.raises(ValueError, match="test images"):
        plan_images({1: 1}, 300, 750, 3, 0.1, np.random.default_rng(0))
