"""tf.train: optimizers, the global step, learning-rate decay and checkpoints."""
from graphexec import api_gaps
from graphexec.train.optimizers import (AdagradOptimizer, AdamOptimizer, GradientDescentOptimizer, MomentumOptimizer,
                                        Optimizer, RMSPropOptimizer)
from graphexec.train.device_setter import replica_device_setter
from graphexec.train.more_optimizers import AdadeltaOptimizer, FtrlOptimizer, ProximalGradientDescentOptimizer
from graphexec.train.moving_averages import ExponentialMovingAverage
from graphexec.train.saver import (CheckpointState, Saver, checkpoint_exists, get_checkpoint_state, latest_checkpoint,
                                   load_checkpoint)
from graphexec.train.training_util import (create_global_step, exponential_decay, get_global_step,
                                           get_or_create_global_step, global_step)

__all__ = ["AdagradOptimizer", "AdamOptimizer", "GradientDescentOptimizer", "MomentumOptimizer", "Optimizer",
           "RMSPropOptimizer", "Saver", "checkpoint_exists", "latest_checkpoint", "load_checkpoint",
           "create_global_step", "exponential_decay", "get_global_step", "get_or_create_global_step", "global_step",
           "AdadeltaOptimizer", "FtrlOptimizer", "ProximalGradientDescentOptimizer", "ExponentialMovingAverage",
           "CheckpointState", "get_checkpoint_state"]

__all__ += ["replica_device_setter"]


__getattr__ = api_gaps.missing_names("train", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
