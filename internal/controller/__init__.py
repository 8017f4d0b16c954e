"""Controllers: watches → rate-limited work queue → N reconcile workers, with upstream's metrics."""

from internal.controller.controller import CacheSyncTimeout, Controller, ControllerOptions, Watch
from internal.controller.handlers import ForOwner, for_object, from_map_func, request_for
from internal.controller.metrics import ControllerMetrics
from internal.controller.predicates import (
    AnnotationsChanged,
    GenerationChanged,
    LabelsChanged,
    Predicate,
    ResourceVersionChanged,
    all_of,
    any_of,
    label_selector,
    negate,
)
from internal.controller.reconcile import ReconcileError, Reconciler, Request, Result, TerminalError

__all__ = [
    "AnnotationsChanged",
    "CacheSyncTimeout",
    "Controller",
    "ControllerMetrics",
    "ControllerOptions",
    "ForOwner",
    "GenerationChanged",
    "LabelsChanged",
    "Predicate",
    "ReconcileError",
    "Reconciler",
    "Request",
    "ResourceVersionChanged",
    "Result",
    "TerminalError",
    "Watch",
    "all_of",
    "any_of",
    "for_object",
    "from_map_func",
    "label_selector",
    "negate",
    "request_for",
]
