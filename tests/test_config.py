"""The run configuration: one set of defaults, strict parsing, resume rules, export selection."""

import json

import numpy as np
import pytest

from lightnas.checks import check_names
from lightnas.cli import cli_fields, parse_option, parse_targets
from lightnas.config import RunConfig, TrainConfig
from lightnas.errors import LightnasError
from lightnas.runfolder import merge
from lightnas.search.pareto import largest_gap, spread_indices


def test_round_trip_and_defaults_defined_once():
    cfg = RunConfig()
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    # the CLI's defaults are the config's: one source
    flags = {f.flag: f for f in cli_fields()}
    assert flags["--epochs"].default == cfg.train.epochs and flags["--batch-size"].default == cfg.train.batch_size
    assert flags["--backend"].default == "onnxruntime" and flags["--max-export"].default == 8


@pytest.mark.parametrize(
    "raw,needle",
    [
        ({"train": {"epochs": "abc"}}, "must be an integer"),
        ({"train": {"epochs": 0}}, "epochs must be at least 1"),
        ({"seed": -1}, "seed"),
        ({"seed": 10**30}, "seed"),
        ({"train": {"lr": float("nan")}}, "finite"),
        ({"colour": 1}, "unknown setting"),
        ({"search": {"constraints": ["latency_ms<<3"]}}, "malformed constraint"),
        ({"search": {"constraints": ["accuracy>=101"]}}, "impossible"),
        ({"export": {"targets": ["accuracy<=50"]}}, "cost metric"),
        ({"data": "digits"}, "mapping"),
        ([], "mapping"),
    ],
)
def test_malformed_configs_are_one_line_errors(raw, needle):
    with pytest.raises(LightnasError, match=needle):
        RunConfig.from_dict(raw)


def test_registry_names_are_checked_before_anything_runs():
    for path, value, needle in (
        ("train.recipe", "magic", "unknown recipe"),
        ("search.strategy", "magic", "unknown strategy"),
        ("latency.backend", "tensorflow", "unknown latency backend"),
        ("supernet.name", "nope", "unknown super-network"),
        ("supernet.options", {"colour": 3}, "unknown setting 'colour' in MobileNetConfig"),
    ):
        with pytest.raises(LightnasError, match=needle):
            check_names(RunConfig().replace({path: value}))


def test_resume_keeps_stored_settings_and_refuses_changes_to_what_was_done():
    stored = RunConfig().replace({"train.epochs": 2, "search.budget": 6, "search.constraints": ["latency_ms<=0.5"]})
    # nothing given: everything as stored (not the defaults)
    assert merge(stored, {}, "resume") == stored
    # the search may change; the training may not
    assert merge(stored, {"search.budget": 10}, "resume").search.budget == 10
    assert merge(stored, {"train.epochs": 2}, "resume") == stored
    with pytest.raises(LightnasError, match="train.epochs=2"):
        merge(stored, {"train.epochs": 8}, "resume")
    with pytest.raises(LightnasError, match="data.source"):
        merge(stored, {"data.source": "digits"}, "resume")


def test_targets_and_options_parse():
    assert parse_targets("0.02,0.05") == ("latency_ms<=0.02", "latency_ms<=0.05")
    assert parse_targets("macs:1e6") == ("macs<=1000000.0",)
    with pytest.raises(LightnasError, match="targets"):
        parse_targets("fast")
    assert parse_option("embed_dims=[32,64]") == ("embed_dims", [32, 64])
    assert parse_option("pool=avg") == ("pool", "avg")
    with pytest.raises(LightnasError, match="NAME=VALUE"):
        parse_option("novalue")


def test_export_spreads_over_the_log_latency_range():
    lat = np.array([1.0, 1.05, 1.1, 1.2, 1.5, 2.0, 2.1, 2.2, 3.0, 3.9, 4.0, 8.0])
    idx = spread_indices(lat, 6)
    assert idx[0] == 0 and idx[-1] == len(lat) - 1 and len(idx) == 6 and idx == sorted(idx)
    # no choice of 6 of these has a smaller largest gap than the greedy one by much
    assert largest_gap(lat[idx]) <= 2.0
    assert spread_indices(lat[:3], 8) == [0, 1, 2]
    assert largest_gap(np.array([1.0, 1.5, 3.0])) == pytest.approx(2.0)


def test_identifiers_read_from_files_are_checked_before_use_as_paths():
    from lightnas.artefacts import check_model_id

    assert check_model_id("net-0123456789") == "net-0123456789"
    assert check_model_id("net-0123456789-ft2") == "net-0123456789-ft2"
    for bad in ("../../etc", "net-0123456789/../x", "net-xyz", "", "net-0123456789\n"):
        with pytest.raises(LightnasError, match="not a lightnas model id"):
            check_model_id(bad)


def test_explicit_cli_options_are_the_only_ones_applied():
    from lightnas.cli import build_parser, explicit_options

    args = build_parser().parse_args(["run", "--epochs", "3", "--max-latency-ms", "0.5", "--targets", "0.02,0.04"])
    assert explicit_options(args) == {
        "train.epochs": 3,
        "search.constraints": ["latency_ms<=0.5"],
        "export.targets": ("latency_ms<=0.02", "latency_ms<=0.04"),
    }
    assert explicit_options(build_parser().parse_args(["run"])) == {}


def test_switches_of_the_config_are_on_off_options():
    from lightnas.cli import build_parser, explicit_options

    parse = build_parser().parse_args
    assert explicit_options(parse(["train", "d", "--augment"])) == {"train.augment": True}
    assert explicit_options(parse(["train", "d", "--no-augment"])) == {"train.augment": False}
    assert RunConfig().replace(explicit_options(parse(["run", "--augment"]))).train.augment is True


def test_targets_export_the_most_accurate_model_under_each_bound():
    from lightnas.selection import select
    from lightnas.store import Record

    def rec(i, acc, lat, params):
        return Record(i, f"a{i}", {"x": i}, {"accuracy": acc, "latency_ms": lat, "params": params}, "ok", 0.0)

    records = [rec(0, 80, 1.0, 10), rec(1, 85, 2.0, 20), rec(2, 84, 1.5, 15), rec(3, 90, 4.0, 40)]
    cfg = RunConfig().replace({"export.targets": ["latency_ms<=1.6", "latency_ms<=2.5", "latency_ms<=0.5"]})
    picks = select([], records, cfg, "accuracy")
    assert [p.arch["x"] for p in picks] == [2, 1]  # 0.5 ms is met by none
    assert picks[0].targets == ("latency_ms<=1.6",)
    by_params = RunConfig().replace({"export.targets": ["params<=40", "params<=39"]})
    assert [p.targets for p in select([], records, by_params, "accuracy")] == [("params<=39",), ("params<=40",)]
    # without targets: the front, spread over its latency range
    spread = select(records, records, RunConfig().replace({"export.max_export": 2}), "accuracy")
    assert [p.arch["x"] for p in spread] == [0, 3]


def test_a_supernet_may_set_its_own_training_defaults_and_the_user_overrides_them(tmp_path):
    from lightnas.runfolder import open_folder
    from lightnas.supernets.hybrid import ElasticHybrid

    default = open_folder(tmp_path / "a", {"supernet.name": "hybrid"})[0].train
    assert default.steps == ElasticHybrid.train_defaults["steps"] > 0
    # a length the user gives replaces the default length, counted either way
    given = open_folder(tmp_path / "a", {"supernet.name": "hybrid", "train.epochs": 3})[0].train
    assert (given.epochs, given.steps) == (3, 0)
    assert open_folder(tmp_path / "a", {"supernet.name": "hybrid", "train.steps": 7})[0].train.steps == 7
    assert open_folder(tmp_path / "a", {})[0].train == RunConfig().train
    # the vit's other default (one student a step) stays when the user sets only the length
    vit = open_folder(tmp_path / "b", {"supernet.name": "vit", "train.epochs": 4})[0].train
    assert (vit.epochs, vit.n_random) == (4, 1) and RunConfig().train.n_random == 2
    with pytest.raises(LightnasError, match="--epochs and --steps"):
        open_folder(tmp_path / "a", {"train.epochs": 3, "train.steps": 7})


def test_a_length_in_steps_becomes_epochs_of_the_data():
    cfg = TrainConfig(steps=848, batch_size=128)
    assert cfg.for_images(13_500).epochs == 8  # 106 steps an epoch
    assert cfg.for_images(4_860).epochs == 23  # 38 steps an epoch, rounded up
    assert cfg.for_images(10**6).epochs == 1  # never under one epoch
    assert cfg.for_images(13_500).steps == 0
    assert TrainConfig(epochs=5).for_images(10) == TrainConfig(epochs=5)
    with pytest.raises(LightnasError, match="steps"):
        TrainConfig(steps=-1)
