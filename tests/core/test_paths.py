from __future__ import annotations

import pytest
from pydantic import BaseModel

from rayflow.core.paths import PathNotFound, get_path, set_path


class Profile(BaseModel):
    name: str = "ada"
    tags: list[str] = ["x", "y"]


class State(BaseModel):
    profile: Profile = Profile()
    counts: dict[str, int] = {}


def test_dotted_paths_through_models_dicts_and_lists():
    state = State()
    assert get_path(state, "profile.name") == "ada"
    assert get_path(state, "profile.tags.1") == "y"
    set_path(state, "counts.a", 3)
    set_path(state, "profile.name", "grace")
    assert state.counts == {"a": 3} and state.profile.name == "grace"


def test_missing_segments_are_created_as_dicts_on_set_and_reported_on_get():
    root: dict = {}
    set_path(root, "a.b.c", 1)
    assert root == {"a": {"b": {"c": 1}}}
    with pytest.raises(PathNotFound):
        get_path(root, "a.x")
