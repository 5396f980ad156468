"""What the stages hand each other through the run folder, typed (torch-free).

==========================  ==========================  =======================================
artefact                    file                        written by -> read by
==========================  ==========================  =======================================
:class:`RunConfig`          ``config.json``             the command line -> every stage
:class:`TrainJob`           (in ``supernet.pt``)        the train stage -> the trainer(s)
:class:`Checkpoint`         ``supernet.pt``             train -> search, export, finetune, report
:class:`Record`             ``lightnas.db`` (one row)   search -> export, report, compare
:class:`ModelCard`          ``models/<id>/card.json``   export, finetune -> report, compare
:class:`TrainingCost`       ``training_cost.json``      export -> report
:class:`RunSummary`         ``summary.json``            report -> the user, ``lightnas compare``
==========================  ==========================  =======================================

Every one has a strict ``from_dict`` (an unknown or missing key, or a value of
the wrong type, is a one-line error naming the file; :mod:`lightnas.strict`)
and a ``to_dict`` that gives back the dictionary on disk, so that a folder
written by this format opens. The checkpoint is stored as a plain dictionary
of tensors, numbers and strings so that ``torch.load(..., weights_only=True)``
reads it.
"""

from lightnas.artefacts.cards import (
    CARD_FORMAT,
    MODEL_ID,
    CardLatency,
    Latency,
    LiteRT,
    ModelCard,
    Quantization,
    Verification,
    check_model_id,
    model_id,
    read_card,
    read_cards,
    write_card,
)
from lightnas.artefacts.summary import DeviceFamily, RunSummary, TrainingCost, read_summary, read_training_cost
from lightnas.artefacts.training import CHECKPOINT_FORMAT, Checkpoint, TrainJob
from lightnas.config import RunConfig
from lightnas.store import Record

__all__ = [
    "CARD_FORMAT",
    "CHECKPOINT_FORMAT",
    "MODEL_ID",
    "CardLatency",
    "Checkpoint",
    "DeviceFamily",
    "Latency",
    "LiteRT",
    "ModelCard",
    "Quantization",
    "Record",
    "RunConfig",
    "RunSummary",
    "TrainJob",
    "TrainingCost",
    "Verification",
    "check_model_id",
    "model_id",
    "read_card",
    "read_cards",
    "read_summary",
    "read_training_cost",
    "write_card",
]
