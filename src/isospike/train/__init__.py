"""Training: plain classifiers (the ANNs to convert) and, per coding, conversion-aware recipes."""

from isospike.train.classifier import TrainingHistory, accuracy, fit_classifier

__all__ = ["TrainingHistory", "accuracy", "fit_classifier"]
