"""The typed artefacts between the stages: strict reads, exact round trips, one-line errors."""

import json

import numpy as np
import pytest

from lightnas.artefacts import ModelCard, RunSummary, TrainingCost, read_card, read_cards
from lightnas.config import RunConfig, TrainConfig
from lightnas.data import load_dataset
from lightnas.errors import LightnasError
from lightnas.objectives import Objective
from lightnas.search import create_strategy
from lightnas.space import Choice, SearchSpace
from lightnas.tasks import TASKS, task_for
from lightnas.tasks.classification import ClassificationTask


def test_every_file_of_a_finished_run_reads_back_to_the_same_dictionary(finished_run):
    index, cards = read_cards(finished_run)
    assert [c.id for c in cards] == index["models"] and cards
    for card in cards:
        on_disk = json.loads((finished_run / "models" / card.id / "card.json").read_text())
        assert card.to_dict() == on_disk
        assert card.latency.latency_ms > 0 and card.verification.onnx_max_abs_diff <= 1e-4
    for cls, name in ((RunSummary, "summary.json"), (TrainingCost, "training_cost.json")):
        on_disk = json.loads((finished_run / name).read_text())
        assert cls.from_dict(on_disk, name).to_dict() == on_disk


def _card(finished_run):
    index = json.loads((finished_run / "models" / "index.json").read_text())
    return json.loads((finished_run / "models" / index["models"][0] / "card.json").read_text())


def test_a_card_is_read_strictly(finished_run, tmp_path):
    card = _card(finished_run)
    without_format = {k: v for k, v in card.items() if k != "format"}  # written before cards named their format
    assert ModelCard.from_dict(without_format).to_dict() == card
    bad = [
        ({**card, "colour": "red"}, "unknown setting 'colour' in ModelCard"),
        ({**card, "latency": {**card["latency"], "latency_ms": "fast"}}, "latency: latency_ms must be a finite number"),
        ({k: v for k, v in card.items() if k != "test_accuracy"}, "ModelCard has no 'test_accuracy'"),
        ({**card, "format": "lightnas-card-0"}, "of format 'lightnas-card-0'"),
        ({**card, "targets": "fast"}, "targets must be a list"),
    ]
    for d, needle in bad:
        path = tmp_path / "card.json"
        path.write_text(json.dumps(d))
        with pytest.raises(LightnasError, match=needle) as err:
            read_card(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_strategy_options_are_one_typed_object_checked_before_the_search():
    space = SearchSpace((Choice("x", (1, 2, 3)), Choice("y", (1, 2))))
    objs = [Objective("acc", "max"), Objective("lat")]
    evo = create_strategy("evolution", space, objs, pop_size=6)
    assert evo.options.pop_size == 6 == evo.pop_size and evo.options.sample_size == 10
    for options, needle in (
        ({"pop_size": "six"}, "pop_size must be an integer"),
        ({"colour": 1}, "unknown setting 'colour' in EvolutionOptions"),
        ({"mix": 2.0}, "mix must be in"),
    ):
        name = "lightnas" if "mix" in options else "evolution"
        with pytest.raises(LightnasError, match=needle):
            create_strategy(name, space, objs, **options)
    with pytest.raises(LightnasError, match="takes EvolutionOptions"):
        type(evo)(space, objs, options=create_strategy("nsga2", space, objs).options)


def test_the_task_is_named_by_the_configuration(monkeypatch):
    data = load_dataset("digits", 0)
    assert isinstance(task_for(data, TrainConfig()), ClassificationTask)

    class Flat(ClassificationTask):
        """Classification without augmentation or label smoothing, whatever the data."""

        @classmethod
        def for_data(cls, data, cfg):  # noqa: ANN001, ANN206
            return cls(label_smoothing=0.0)

    monkeypatch.setitem(TASKS._items, "flat", Flat)
    task = task_for(data, TrainConfig(task="flat"))
    assert type(task) is Flat and task.label_smoothing == 0.0
    logits = np.eye(10, dtype=np.float32)[data.y_val[:20]]
    import torch

    assert task.metric(torch.from_numpy(logits), torch.from_numpy(data.y_val[:20])) == 100.0
    from lightnas.checks import check_names

    with pytest.raises(LightnasError, match="unknown task 'nope'"):
        check_names(RunConfig.from_dict({"train": {"task": "nope"}}))
