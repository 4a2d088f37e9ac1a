"""Operator-level capture: a model's own eager forward runs while every floating-point ATen
operation it performs is computed by the gate circuits (or by the pinned float32 reference).

:class:`GateCapture` is the ``TorchDispatchMode`` that intercepts the operations;
:mod:`.handlers` maps each ATen operation to its pinned algorithm; :mod:`.passthrough` lists the
operations that only move, select or create values and run as they are."""

from isospike.exact.capture.dispatch import GateCapture, module_path_hooks

__all__ = ["GateCapture", "module_path_hooks"]
