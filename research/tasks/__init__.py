"""LightningModules: pre-training and fine-tuning tasks of the split ViT, and loading them back
as plain models (:func:`load_classifier`)."""

from research.tasks.base import BaseTask
from research.tasks.classification import ClassificationTask
from research.tasks.codec import CodecTask
from research.tasks.loading import Classifier, load_classifier
from research.tasks.mae import MAEPretrainTask
from research.tasks.spiking import SpikingTask

__all__ = ["BaseTask", "Classifier", "ClassificationTask", "CodecTask", "MAEPretrainTask",
           "SpikingTask", "load_classifier"]
