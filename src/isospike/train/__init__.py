"""Training: plain classifiers (the ANNs to convert) and conversion-aware recipes."""

from isospike.train.classifier import TrainingHistory, accuracy, fit_classifier
from isospike.train.noise_aware import load_best, measure_sigma, noise_aware
from isospike.train.qcfs import NoisyQCFS, quantize_relus

__all__ = [
    "NoisyQCFS", "TrainingHistory", "accuracy", "fit_classifier", "load_best", "measure_sigma", "noise_aware",
    "quantize_relus",
]
