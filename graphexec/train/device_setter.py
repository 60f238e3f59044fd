"""tf.train.replica_device_setter: the TF1 device function that puts variables on parameter-server tasks.

graphexec runs each graph on one worker, so job and task only label the nodes (placement reads the device
type alone); programs written for a cluster build and run unchanged.
"""
from __future__ import annotations

from graphexec.ops.state_ops import VARIABLE_OPS


def _job_device(job: str, task: int | None = None) -> str:
    return job if task is None else f"{job}/task:{task}"


def replica_device_setter(ps_tasks=0, ps_device="/job:ps", worker_device="/job:worker", merge_devices=True,
                          cluster=None, ps_ops=None, ps_strategy=None):
    """A device function: ops that hold or update a variable go to a ps task (round robin over variables),
    every other op to `worker_device`. With no ps tasks (and no cluster) it returns None, as TF does."""
    if cluster is not None:
        jobs = cluster.as_dict() if hasattr(cluster, "as_dict") else dict(cluster)
        ps_tasks = len(jobs.get("ps", ()))
    if ps_tasks == 0:
        return None
    variable_ops = frozenset(ps_ops) | VARIABLE_OPS if ps_ops else VARIABLE_OPS
    tasks: dict[str, int] = {}

    def choose_device(op):
        if op.device and not merge_devices:
            return op.device
        if op.type in variable_ops and "var" in op.attrs:
            if ps_strategy is not None:
                return _job_device(ps_device, ps_strategy(op))
            task = tasks.setdefault(op.attrs["var"], len(tasks) % ps_tasks)
            return _job_device(ps_device, task)
        return worker_device or ""

    return choose_device
