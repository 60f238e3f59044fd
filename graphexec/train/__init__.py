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

# tf.train.Example and its parts (graphexec/v1/example.proto, wire-compatible with TensorFlow's)
from graphexec.rpc.example import (Example, Feature, FeatureBytesList as BytesList,  # noqa: E402
                                   FeatureFloatList as FloatList, FeatureInt64List as Int64List, Features)

__all__ += ["BytesList", "Example", "Feature", "Features", "FloatList", "Int64List"]

from graphexec.train.session_run_hook import (SessionRunArgs, SessionRunContext, SessionRunHook,  # noqa: E402
                                              SessionRunValues)
from graphexec.train.basic_hooks import (CheckpointSaverHook, CheckpointSaverListener, FeedFnHook, FinalOpsHook, LoggingTensorHook,  # noqa: E402
                                         NanLossDuringTrainingError, NanTensorHook, SecondOrStepTimer,
                                         StepCounterHook, StopAtStepHook, SummarySaverHook)
from graphexec.train.monitored_session import (ChiefSessionCreator, MonitoredSession,  # noqa: E402
                                               MonitoredTrainingSession, Scaffold, SessionCreator,
                                               SingularMonitoredSession, WorkerSessionCreator)

__all__ += ["SessionRunArgs", "SessionRunContext", "SessionRunHook", "SessionRunValues", "CheckpointSaverHook",
            "FeedFnHook", "FinalOpsHook", "LoggingTensorHook", "NanLossDuringTrainingError", "NanTensorHook",
            "SecondOrStepTimer", "StepCounterHook", "StopAtStepHook", "SummarySaverHook", "ChiefSessionCreator",
            "MonitoredSession", "MonitoredTrainingSession", "Scaffold", "SingularMonitoredSession",
            "WorkerSessionCreator", "CheckpointSaverListener", "SessionCreator"]


__getattr__ = api_gaps.missing_names("train", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
