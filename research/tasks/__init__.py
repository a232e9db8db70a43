"""LightningModules: pre-training and fine-tuning tasks of the split ViT."""

from research.tasks.base import BaseTask
from research.tasks.classification import ClassificationTask
from research.tasks.codec import CodecTask
from research.tasks.mae import MAEPretrainTask
from research.tasks.spiking import SpikingTask

__all__ = ["BaseTask", "ClassificationTask", "CodecTask", "MAEPretrainTask", "SpikingTask"]
