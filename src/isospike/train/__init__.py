"""Training: plain classifiers (the ANNs to convert) and conversion-aware recipes."""

from isospike.train.augment import crop_flip
from isospike.train.classifier import TrainingHistory, accuracy, digits_cnn, fit_classifier

# the one distillation / hybrid recipe of every model: isospike.train.distill(student, teacher, data)
# (the name is the function; its module stays importable: from isospike.train.distill import Encoded)
from isospike.train.distill import distill
from isospike.train.gamma import evaluate_sequences, gradient_alignment, spiking_gamma
from isospike.train.nq import load_best, load_trained, measure_sigma, noise_aware, save_trained
from isospike.train.qcfs import NoisyQCFS, quantize_relus
from isospike.train.site_masking import mask_sites
from isospike.train.spiking import finetune_spiking
from isospike.train.ttfs import TTFSQuant, mask_ttfs, qnn_from, ttfs_layers

__all__ = [
    "NoisyQCFS", "TrainingHistory", "accuracy", "crop_flip", "digits_cnn", "distill", "finetune_spiking", "fit_classifier",
    "load_best",
    "load_trained", "measure_sigma",
    "evaluate_sequences", "gradient_alignment", "noise_aware", "quantize_relus", "save_trained", "spiking_gamma",
    "TTFSQuant", "mask_ttfs", "mask_sites", "qnn_from", "ttfs_layers",
]
