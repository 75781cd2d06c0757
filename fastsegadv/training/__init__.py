"""Adversarial training: the AT batch for anyone's loop (:func:`adversarial_batch`,
:func:`adversarial_training_loss`) and the complete loop (:func:`fit`, :class:`TrainConfig`)."""
from ..distributed.context import DistContext, init_distributed
from .at_batch import adversarial_batch, adversarial_training_loss
from .loop import TrainConfig, fit

__all__ = ["adversarial_batch", "adversarial_training_loss", "TrainConfig", "fit", "DistContext", "init_distributed"]
