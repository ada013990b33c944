"""training/schedule.py's plan functions at the edges the train tests do not reach: a checkpoint's plan read,
the lr past a schedule's end, the notes on a resumed run (mutruntime hunt: each test failed on a change the
suite let by)."""

from __future__ import annotations

import pytest

from archdsl.training import schedule

PLAN = {"epochs": 4, "batch_size": 4, "schedule": "cosine", "schedule_per": "batch", "warmup": 0,
        "milestones": [], "gamma": 0.1, "examples": 8}


def test_a_plan_with_a_key_train_does_not_write_is_refused():
    """__plan__ holds the schedule's keys only: a checkpoint with another is not one train wrote (C01), and a
    milestone must be an int, not true (C02)."""
    assert schedule.read_plan(dict(PLAN)) == PLAN
    with pytest.raises(TypeError):
        schedule.read_plan({**PLAN, "momentum": 0.9})
    with pytest.raises(TypeError):
        schedule.read_plan({**PLAN, "milestones": [True]})


def test_the_next_lr_past_a_per_batch_schedule_is_its_end():
    """8 updates done of a cosine planned as 4: the next runs at lr 0, the schedule's end, not at the cosine's
    second period (lr 0.1 again: C03), nor a linear decay's negative lr."""
    assert schedule.next_lr({**PLAN, "epochs": 4}, 0.1, 3, 8, 1) == 0.0
    assert schedule.next_lr({**PLAN, "schedule": "linear"}, 0.1, 3, 8, 1) == 0.0


def test_a_checkpoint_without_its_example_count_is_no_other_schedule():
    """A checkpoint written before __plan__ kept its examples (None) resumed with the same settings: no note
    (C06 said '--data of None examples')."""
    saved = schedule.read_plan({k: v for k, v in PLAN.items() if k != "examples"})
    assert schedule.plan_note("w.ckpt.npz", saved, PLAN, 0.1, 2, 2, lambda p: 2) is None


def test_leaving_a_per_batch_schedule_names_the_batch_size_it_was_counted_in():
    """A cosine per batch resumed per epoch with another --batch-size: the checkpoint's schedule was counted in
    batches of 4, which the note names (C18 read only the new plan's per-batch: '--schedule-per batch' alone)."""
    saved = {**PLAN, "schedule_per": "batch", "batch_size": 4}
    now = {**PLAN, "schedule_per": "epoch", "batch_size": 2}
    note = schedule.plan_note("w.ckpt.npz", saved, now, 0.1, 2, 2, lambda p: 8 // p["batch_size"])
    assert "was trained with --batch-size 4 --schedule-per batch; with --batch-size 2 --schedule-per epoch" in note
