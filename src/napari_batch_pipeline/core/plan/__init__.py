"""Planning: a pipeline, a folder and options turned into tasks, with no side effect.

Holds the options of a batch (:mod:`.options`), the parameter sets of a sweep
(:mod:`.parameters`), the parameter table of many datasets (:mod:`.params_table`), the
names the tables keep for themselves (:mod:`.reserved`), the tasks and their output
names (:mod:`.tasks`), the groups of group stages (:mod:`.groups`), the memory and time
estimate (:mod:`.estimate`), and the plan that puts them together (:mod:`.batch_plan`).
It reads images, the pipeline and the run folder's naming rules; it knows nothing of
executors or of how a run is written.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

# imported at once: the function ``estimate`` is named as its module, and must win
from .estimate import (
    Estimate,
    default_budget,
    estimate,
    format_bytes,
    format_seconds,
    held_bytes,
    measure_first,
    parse_size,
)

if TYPE_CHECKING:
    from .batch_plan import BatchPlan, plan_batch
    from .groups import Group, plan_groups
    from .options import EXECUTORS, STRATEGIES, BatchOptions
    from .parameters import parameter_sets, parse_sweep
    from .tasks import Task, check_output_names, make_tasks, task_label

#: where each other name lives: loaded on first use, so that a worker process that needs
#: the estimate's ``held_bytes`` does not import the whole planning layer (the screen's
#: checks, the run folder's reader)
_WHERE = {
    "BatchPlan": "batch_plan",
    "plan_batch": "batch_plan",
    "Group": "groups",
    "plan_groups": "groups",
    "EXECUTORS": "options",
    "STRATEGIES": "options",
    "BatchOptions": "options",
    "parameter_sets": "parameters",
    "parse_sweep": "parameters",
    **dict.fromkeys(("Task", "check_output_names", "make_tasks", "task_label"), "tasks"),
}

__all__ = [
    "EXECUTORS",
    "STRATEGIES",
    "BatchOptions",
    "BatchPlan",
    "Estimate",
    "Group",
    "Task",
    "check_output_names",
    "default_budget",
    "estimate",
    "format_bytes",
    "format_seconds",
    "held_bytes",
    "make_tasks",
    "measure_first",
    "parameter_sets",
    "parse_size",
    "parse_sweep",
    "plan_batch",
    "plan_groups",
    "task_label",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
