"""The project document: round trips, atomic saving, clear errors for every bad input."""
from __future__ import annotations

import json
import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netbuilder.core.errors import ProjectError
from netbuilder.core.inference import infer
from netbuilder.core.project import (
    FORMAT_VERSION,
    Project,
    TrainingSettings,
    load_project,
    parse_project,
    save_project,
)


def lenet() -> Project:
    return Project(
        name="LeNet",
        blocks=[
            {"kind": "conv", "filters": 6, "kernel_size": 5, "padding": "same"},
            {"kind": "pool", "size": [2, 2]},
            {"kind": "flatten", "name": "flat"},
            {"kind": "dense", "units": 10, "activation": "softmax"},
        ],
        training=TrainingSettings(learning_rate=0.01, batch_size=32, seed=7),
        dataset={"kind": "shapes", "train_size": 100},
    )


def messages(exc: pytest.ExceptionInfo) -> list[str]:
    return [p.message for p in exc.value.problems]


# -- round trips -------------------------------------------------------------------------------

def test_to_dict_from_dict_round_trip():
    project = lenet()
    data = project.to_dict()
    assert list(data) == ["format", "name", "input_shape", "num_classes", "blocks", "training", "dataset"]
    assert data["format"] == FORMAT_VERSION
    assert data["input_shape"] == [1, 28, 28]
    assert Project.from_dict(data) == project


def test_to_dict_is_a_deep_copy():
    project = lenet()
    data = project.to_dict()
    data["blocks"][1]["size"][0] = 99
    data["dataset"]["train_size"] = 5
    assert project.blocks[1]["size"] == [2, 2]
    assert project.dataset["train_size"] == 100


def test_copy_is_deep():
    project = lenet()
    other = project.copy()
    other.blocks[1]["size"][0] = 3
    other.training.epochs = 99
    assert project.blocks[1]["size"] == [2, 2]
    assert project.training.epochs == 5
    assert other != project


def test_to_json_format():
    text = lenet().to_json()
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert '\n  "input_shape": [1, 28, 28],\n' in text
    assert json.loads(text) == lenet().to_dict()


def test_save_load_round_trip_is_byte_identical(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    save_project(lenet(), first)
    loaded = load_project(first)
    assert loaded == lenet()
    save_project(loaded, second)
    assert first.read_bytes() == second.read_bytes()


def test_integers_in_float_fields_load_as_floats(tmp_path):
    data = lenet().to_dict()
    data["training"]["learning_rate"] = 1
    project = Project.from_dict(data)
    assert project.training.learning_rate == 1.0 and isinstance(project.training.learning_rate, float)


def test_missing_training_fields_get_defaults():
    project = Project.from_dict({"format": 1, "training": {"epochs": 3}})
    assert project.training == TrainingSettings(epochs=3)
    assert project.blocks == [] and project.name == "Untitled"


def test_bad_blocks_still_load_for_the_gui():
    blocks = [{"kind": "conv", "filters": -3, "kernal_size": "big"}, {"kind": "warp"}]
    project = Project.from_dict({"format": 1, "blocks": blocks})
    assert project.blocks == blocks
    assert not infer(project).ok


# -- saving --------------------------------------------------------------------------------------

def test_save_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "p.json"
    save_project(lenet(), path)
    save_project(lenet(), path)
    assert os.listdir(tmp_path) == ["p.json"]


def test_save_keeps_an_existing_files_permissions(tmp_path):
    path = tmp_path / "p.json"
    save_project(lenet(), path)
    os.chmod(path, 0o640)
    save_project(lenet(), path)
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_failed_rename_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    path.write_text("old contents")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ProjectError) as exc:
        save_project(lenet(), path)
    assert str(path) in str(exc.value) and "Permission denied" in str(exc.value)
    assert path.read_text() == "old contents"
    assert os.listdir(tmp_path) == ["p.json"]


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    path.write_text("old contents")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ProjectError, match="No space left"):
        save_project(lenet(), path)
    assert path.read_text() == "old contents"
    assert os.listdir(tmp_path) == ["p.json"]


def test_save_into_missing_folder_names_the_file(tmp_path):
    path = tmp_path / "nowhere" / "p.json"
    with pytest.raises(ProjectError) as exc:
        save_project(lenet(), path)
    assert exc.value.source == str(path)
    assert not (tmp_path / "nowhere").exists()


def test_unwritable_values_raise_project_error(tmp_path):
    project = lenet()
    project.training.learning_rate = math.nan
    with pytest.raises(ProjectError, match="cannot be written as JSON"):
        save_project(project, tmp_path / "p.json")
    project = lenet()
    project.dataset["path"] = object()
    with pytest.raises(ProjectError, match="cannot be written as JSON"):
        project.to_json()
    assert os.listdir(tmp_path) == []


# -- loading -------------------------------------------------------------------------------------

def test_load_missing_file(tmp_path):
    path = tmp_path / "missing.json"
    with pytest.raises(ProjectError, match="no such file") as exc:
        load_project(path)
    assert str(path) in str(exc.value)


def test_load_folder(tmp_path):
    with pytest.raises(ProjectError, match="is a folder"):
        load_project(tmp_path)


def test_load_not_utf8(tmp_path):
    path = tmp_path / "p.json"
    path.write_bytes(b'{"format": 1, "name": "caf\xe9"}')
    with pytest.raises(ProjectError, match=r"not UTF-8 text \(byte 0xe9 at offset 26\)") as exc:
        load_project(path)
    assert str(path) in str(exc.value)


def test_load_accepts_utf8_bom(tmp_path):
    path = tmp_path / "p.json"
    path.write_bytes(b"\xef\xbb\xbf" + lenet().to_json().encode())
    assert load_project(path) == lenet()


def test_json_syntax_error_names_source_line_and_column():
    text = '{\n  "format": 1,\n  "name": "x"\n  "blocks": []\n}'
    with pytest.raises(ProjectError) as exc:
        parse_project(text, "my.json")
    assert str(exc.value).startswith("my.json: invalid JSON at line 4, column 3")
    assert exc.value.source == "my.json"


@pytest.mark.parametrize("text", ['{"format": 1, "training": {"learning_rate": NaN}}',
                                  '{"format": 1, "training": {"learning_rate": Infinity}}'])
def test_non_standard_json_constants_are_rejected(text):
    with pytest.raises(ProjectError, match="is not allowed"):
        parse_project(text)


def test_deep_nesting_is_a_project_error():
    with pytest.raises(ProjectError, match="nested too deeply"):
        parse_project("[" * 100_000 + "]" * 100_000)
    deep = {"format": 1, "dataset": {"kind": "shapes", "x": json.loads("[" * 900 + "]" * 900)}}
    with pytest.raises(ProjectError):
        Project.from_dict(deep)


# -- structural problems ---------------------------------------------------------------------

@pytest.mark.parametrize("data, fragment", [
    ([], "a project must be a JSON object {...}, got a list []"),
    ("hello", 'got a string "hello"'),
    ({}, 'no "format" field'),
    ({"format": "1"}, 'format must be a whole number (the file format version), got "1"'),
    ({"format": True}, "got true"),
    ({"format": 0}, "format must be between 1 and 2, got 0"),
    ({"format": 1, "name": 5}, "name must be a string, got 5"),
    ({"format": 1, "input_shape": [28, 28]}, "input_shape must be [channels, height, width]"),
    ({"format": 1, "input_shape": [1, 28.0, 28]}, "got [1, 28.0, 28]"),
    ({"format": 1, "num_classes": "10"},
     'num_classes must be a whole number or null (take it from the dataset), got "10"'),
    ({"format": 1, "blocks": {"kind": "conv"}},
     'blocks must be a list of blocks [...], got an object {"kind": "conv"}'),
    ({"format": 1, "blocks": ["conv"]},
     'block 1: a block must be an object like {"kind": "conv", ...}, got a string "conv"'),
    ({"format": 1, "blocks": [{"units": 3}]}, 'block 1: no "kind" field'),
    ({"format": 1, "blocks": [{"kind": 3}]}, 'block 1: kind must be a string such as "conv", got 3'),
    ({"format": 1, "training": []}, "training must be an object {...}, got a list []"),
    ({"format": 1, "training": {"lr": 0.1}}, 'unknown training field "lr" (did you mean "learning_rate"?)'),
    ({"format": 1, "training": {"epochs": 2.5}}, "training.epochs must be a whole number, got 2.5"),
    ({"format": 1, "training": {"batch_size": True}}, "training.batch_size must be a whole number, got true"),
    ({"format": 1, "training": {"learning_rate": "fast"}}, 'training.learning_rate must be a number, got "fast"'),
    ({"format": 1, "training": {"loss": 3}}, "training.loss must be a string, got 3"),
    ({"format": 1, "dataset": "shapes"}, 'dataset must be an object like {"kind": "shapes"}, got a string "shapes"'),
    ({"format": 1, "dataset": {"path": "x"}}, 'dataset needs a "kind" string such as "shapes", got null'),
    ({"format": 1, "nmae": "x"}, 'unknown top-level field "nmae" (did you mean "name"?)'),
])
def test_structural_problems(data, fragment):
    with pytest.raises(ProjectError) as exc:
        Project.from_dict(data)
    assert any(fragment in m for m in messages(exc)), messages(exc)


def test_newer_format_is_the_only_complaint():
    with pytest.raises(ProjectError) as exc:
        Project.from_dict({"format": FORMAT_VERSION + 1, "blocks": 3, "layers": []}, "new.json")
    assert messages(exc) == [f"format {FORMAT_VERSION + 1} is newer than this version of netbuilder "
                             f"supports (format {FORMAT_VERSION}); update netbuilder to open it"]
    assert str(exc.value).startswith(f"new.json: format {FORMAT_VERSION + 1}")


def test_every_structural_problem_is_collected():
    data = {"format": 1, "name": None, "input_shape": "28x28", "blocks": [1, {"kind": "conv"}, {}],
            "training": {"epochs": "5", "seed": 1.5}, "colour": "red"}
    with pytest.raises(ProjectError) as exc:
        Project.from_dict(data)
    fields = sorted((p.field or "", p.block if p.block is not None else -1) for p in exc.value.problems)
    assert fields == [("", 0), ("colour", -1), ("input_shape", -1), ("kind", 2), ("name", -1),
                      ("training.epochs", -1), ("training.seed", -1)]
    problem = next(p for p in exc.value.problems if p.field == "training.seed")
    assert problem.value == 1.5


# -- fuzzing -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
fuzz = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(json_values)
def test_arbitrary_json_only_raises_project_error(value):
    for call in (lambda: parse_project(json.dumps(value)), lambda: Project.from_dict(value)):
        try:
            project = call()
        except ProjectError:
            continue
        infer(project)


@fuzz
@given(st.text(max_size=40))
def test_arbitrary_text_only_raises_project_error(text):
    try:
        parse_project(text)
    except ProjectError:
        pass


_KEYS = st.sampled_from(["kind", "filters", "kernel_size", "stride", "padding", "activation", "mode", "size",
                         "units", "rate", "name", "input_shape", "num_classes", "blocks", "training", "loss",
                         "optimizer", "learning_rate", "batch_size", "epochs", "format", "dataset", "x"])
_SMALL = (st.integers(-3, 40) | st.sampled_from(["same", "valid", "softmax", "sigmoid", "relu", "max", "conv",
                                                 "pool", "dense", "flatten", "dropout", "activation", "", "x y"])
          | st.lists(st.integers(-1, 6), max_size=3) | st.floats(-1, 2) | st.none() | st.booleans() | json_values)


def _mutate(data, path, key, value):
    """Set ``key`` of the object/list reached by following ``path`` indices (wrapping) to ``value``."""
    node = data
    for step in path:
        children = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else []
        children = [c for c in children if isinstance(c, (dict, list))]
        if not children:
            break
        node = children[step % len(children)]
    if isinstance(node, dict):
        node[key] = value
    elif isinstance(node, list) and node:
        node[hash(key) % len(node)] = value


@fuzz
@given(st.lists(st.tuples(st.lists(st.integers(0, 9), max_size=3), _KEYS, _SMALL), min_size=1, max_size=4))
def test_mutated_valid_projects_only_raise_project_error(mutations):
    data = lenet().to_dict()
    for path, key, value in mutations:
        _mutate(data, path, key, value)
    try:
        project = parse_project(json.dumps(data))
    except ProjectError:
        return
    result = infer(project)
    assert all(p.message for p in result.problems)
