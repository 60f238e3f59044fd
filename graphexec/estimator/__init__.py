"""tf.estimator (TF1): Estimator, EstimatorSpec, ModeKeys, RunConfig and tf.estimator.inputs."""
from graphexec.estimator import inputs
from graphexec.estimator.estimator import Estimator
from graphexec.estimator.model_fn import EstimatorSpec, ModeKeys
from graphexec.estimator.run_config import RunConfig

__all__ = ["Estimator", "EstimatorSpec", "ModeKeys", "RunConfig", "inputs"]
