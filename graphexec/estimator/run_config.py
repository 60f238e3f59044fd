"""RunConfig: where an Estimator keeps its checkpoints and summaries, and how often it writes them."""
from __future__ import annotations

import dataclasses

_DEFAULT_CHECKPOINT_SECS = 600


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """TF1's tf.estimator.RunConfig (one process: no cluster). Give save_checkpoints_steps or _secs, not
    both; with neither, a checkpoint is saved every 600 s (and always at the end of train())."""

    model_dir: str | None = None
    tf_random_seed: int | None = None
    save_summary_steps: int = 100
    save_checkpoints_steps: int | None = None
    save_checkpoints_secs: float | None = None
    session_config: object = None
    keep_checkpoint_max: int = 5
    keep_checkpoint_every_n_hours: float = 10000
    log_step_count_steps: int = 100
    train_distribute: object = None
    device_fn: object = None
    master: str = ""

    def __post_init__(self):
        if self.save_checkpoints_steps is not None and self.save_checkpoints_secs is not None:
            raise ValueError("save_checkpoints_steps and save_checkpoints_secs cannot both be set.")
        if self.save_checkpoints_steps is None and self.save_checkpoints_secs is None:
            object.__setattr__(self, "save_checkpoints_secs", _DEFAULT_CHECKPOINT_SECS)
        for name in ("save_summary_steps", "keep_checkpoint_max", "log_step_count_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} should be >= 0, given {getattr(self, name)}")

    def replace(self, **changes) -> "RunConfig":
        if "save_checkpoints_steps" in changes and "save_checkpoints_secs" not in changes:
            changes["save_checkpoints_secs"] = None
        return dataclasses.replace(self, **changes)
