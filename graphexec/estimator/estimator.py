"""tf.estimator.Estimator: train, evaluate and predict with a model_fn, keeping checkpoints and
summaries in model_dir. Each call builds a fresh graph, restores the latest checkpoint (so a new
Estimator, or a new process, resumes where the last one stopped) and runs a MonitoredSession: in-process,
or on a server when GRAPHEXEC_TARGET (or RunConfig.master) names one; checkpoints are written here."""
from __future__ import annotations

import contextlib
import inspect
import os
import tempfile

import numpy as np

from graphexec import metrics, progress, summary
from graphexec import tf_logging as logging
from graphexec.estimator.inputs import feeding_hook
from graphexec.estimator.model_fn import EstimatorSpec, ModeKeys
from graphexec.estimator.run_config import RunConfig
from graphexec.framework import Graph, get_default_graph
from graphexec.ops.control_ops import group
from graphexec.ops.random_ops import set_random_seed
from graphexec.rpc.summary import Summary
from graphexec.summary.writer_cache import FileWriterCache
from graphexec.train.basic_hooks import (CheckpointSaverHook, FinalOpsHook, LoggingTensorHook, NanTensorHook,
                                         StopAtStepHook)
from graphexec.train.monitored_session import ChiefSessionCreator, MonitoredSession, MonitoredTrainingSession, Scaffold
from graphexec.train.saver import Saver, latest_checkpoint, load_checkpoint
from graphexec.train.session_run_hook import SessionRunHook
from graphexec.train.training_util import get_global_step, get_or_create_global_step
from graphexec.variables import GraphKeys

LOSS_METRIC_KEY = "loss"
_MODEL_FN_ARGS = {"features", "labels", "mode", "params", "config"}


class Estimator:
    def __init__(self, model_fn, model_dir=None, config=None, params=None, warm_start_from=None):
        config = config or RunConfig()
        if not isinstance(config, RunConfig):
            raise ValueError(f"config must be an instance of RunConfig, but provided {config}.")
        if model_dir and config.model_dir and os.fspath(model_dir) != config.model_dir:
            raise ValueError(f"model_dir are set both in constructor and RunConfig, but with different values. "
                             f"In constructor: '{model_dir}', in RunConfig: '{config.model_dir}' ")
        if not (model_dir or config.model_dir):
            model_dir = tempfile.mkdtemp()
            logging.warning("Using temporary folder as model directory: %s", model_dir)
        model_dir = os.fspath(model_dir or config.model_dir)
        self._config = config.replace(model_dir=model_dir) if config.model_dir != model_dir else config
        self._model_fn_args = set(inspect.signature(model_fn).parameters)
        if "features" not in self._model_fn_args:
            raise ValueError(f"model_fn ({model_fn}) must include features argument.")
        unknown = self._model_fn_args - _MODEL_FN_ARGS
        if unknown:
            raise ValueError(f"model_fn ({model_fn}) has following not expected args: {sorted(unknown)}")
        self._model_fn, self._params = model_fn, dict(params or {})
        if warm_start_from is not None:
            raise NotImplementedError("graphexec's Estimator does not warm-start; restore with a Scaffold init_fn")

    model_dir = property(lambda self: self._config.model_dir)
    config = property(lambda self: self._config)
    params = property(lambda self: dict(self._params))
    model_fn = property(lambda self: self._model_fn)

    def latest_checkpoint(self):
        return latest_checkpoint(self.model_dir)

    def get_variable_names(self):
        return sorted(self._checkpoint_values())

    def get_variable_value(self, name):
        return self._checkpoint_values()[name]

    def _checkpoint_values(self):
        checkpoint = self.latest_checkpoint()
        if checkpoint is None:
            raise ValueError(f"Could not find trained model in model_dir: {self.model_dir}.")
        return load_checkpoint(checkpoint)

    # -- train -----------------------------------------------------------------------------------------
    def train(self, input_fn, hooks=None, steps=None, max_steps=None, saving_listeners=None):
        """Train until the input ends, `steps` more steps, or the global step reaches `max_steps`."""
        if steps is not None and max_steps is not None:
            raise ValueError("Can not provide both steps and max_steps.")
        if steps is not None and steps <= 0:
            raise ValueError(f"Must specify steps > 0, given: {steps}")
        if max_steps is not None and max_steps <= 0:
            raise ValueError(f"Must specify max_steps > 0, given: {max_steps}")
        if max_steps is not None and self._latest_step() >= max_steps:
            logging.info("Skipping training since max_steps has already saved.")
            return self
        config = self._config
        with Graph().as_default() as graph, _closing_bar("training", "step") as bar:
            global_step, features, labels, input_hooks = self._inputs(graph, input_fn, ModeKeys.TRAIN)
            spec = self._call_model_fn(features, labels, ModeKeys.TRAIN)
            summary.scalar("loss", spec.loss)
            scaffold = self._scaffold_with_saver(spec.scaffold)
            hooks = [*input_hooks, *([StopAtStepHook(steps, max_steps)] if steps or max_steps else []),
                     NanTensorHook(spec.loss), *spec.training_hooks, *(hooks or ()), _Progress(bar, steps, max_steps)]
            if config.log_step_count_steps:
                hooks.insert(len(input_hooks) + 1, LoggingTensorHook(
                    {"loss": spec.loss, "step": global_step}, every_n_iter=config.log_step_count_steps))
            chief_hooks = list(spec.training_chief_hooks)
            if saving_listeners:
                chief_hooks.append(CheckpointSaverHook(config.model_dir, save_secs=config.save_checkpoints_secs,
                                                       save_steps=config.save_checkpoints_steps, scaffold=scaffold,
                                                       listeners=saving_listeners))
            loss = None
            with MonitoredTrainingSession(
                    master=config.master, checkpoint_dir=config.model_dir, scaffold=scaffold, hooks=hooks,
                    chief_only_hooks=chief_hooks, config=config.session_config,
                    save_checkpoint_secs=None if saving_listeners else config.save_checkpoints_secs,
                    save_checkpoint_steps=None if saving_listeners else config.save_checkpoints_steps,
                    save_summaries_steps=config.save_summary_steps, save_summaries_secs=None,
                    log_step_count_steps=config.log_step_count_steps) as session:
                while not session.should_stop():
                    _, loss = session.run([spec.train_op, spec.loss])
            logging.info("Loss for final step: %s.", loss)
        return self

    # -- evaluate --------------------------------------------------------------------------------------
    def evaluate(self, input_fn, steps=None, hooks=None, checkpoint_path=None, name=None):
        """The eval_metric_ops (and the mean loss, and the global step) over the input, or `steps` batches
        of it, for the latest checkpoint (or `checkpoint_path`); also written as summaries to model_dir/eval."""
        if steps is not None and steps <= 0:
            raise ValueError(f"Must specify steps > 0, given: {steps}")
        checkpoint_path = checkpoint_path or self.latest_checkpoint()
        if checkpoint_path is None:
            logging.info("Could not find trained model in model_dir: %s, running initialization to evaluate.",
                         self.model_dir)
        with Graph().as_default() as graph, _closing_bar("evaluating", "step") as bar:
            global_step, features, labels, input_hooks = self._inputs(graph, input_fn, ModeKeys.EVAL)
            spec = self._call_model_fn(features, labels, ModeKeys.EVAL)
            if LOSS_METRIC_KEY in spec.eval_metric_ops:
                raise ValueError(f'Metric with name "{LOSS_METRIC_KEY}" is not allowed, because Estimator already '
                                 f'defines a default metric with the same name.')
            metric_ops = {LOSS_METRIC_KEY: metrics.mean(spec.loss), **spec.eval_metric_ops}
            update_op = group(*[update for _, update in metric_ops.values()])
            values = {name_: value for name_, (value, _) in metric_ops.items()}
            values[GraphKeys.GLOBAL_STEP] = global_step
            final = FinalOpsHook(values)
            hooks = [*input_hooks, *([_StopAfter(steps)] if steps else []), *spec.evaluation_hooks, *(hooks or ()),
                     _Progress(bar, steps, None), final]
            creator = ChiefSessionCreator(spec.scaffold or Scaffold(), self._config.master,
                                          self._config.session_config, checkpoint_filename_with_path=checkpoint_path)
            with MonitoredSession(creator, hooks) as session:
                while not session.should_stop():
                    session.run(update_op)
        results = {key: value[()] if isinstance(value, np.ndarray) else value  # numpy scalars, as TF's
                   for key, value in final.final_ops_values.items()}
        self._write_eval_summaries(results, name)
        logging.info("Saving dict for global step %d: %s", results[GraphKeys.GLOBAL_STEP],
                     ", ".join(f"{k} = {v}" for k, v in sorted(results.items())))
        return results

    def _write_eval_summaries(self, results, name):
        directory = os.path.join(self.model_dir, "eval" if not name else f"eval_{name}")
        values = [Summary.Value(tag=tag, simple_value=float(value)) for tag, value in sorted(results.items())
                  if tag != GraphKeys.GLOBAL_STEP and np.ndim(value) == 0]
        FileWriterCache.get(directory).add_summary(Summary(value=values), int(results[GraphKeys.GLOBAL_STEP]))
        FileWriterCache.clear()

    # -- predict ---------------------------------------------------------------------------------------
    def predict(self, input_fn, predict_keys=None, hooks=None, checkpoint_path=None, yield_single_examples=True):
        """Yields the predictions of the latest checkpoint (or `checkpoint_path`) for every example of the
        input (or every batch, when not `yield_single_examples`); dicts keep only `predict_keys`."""
        checkpoint_path = checkpoint_path or self.latest_checkpoint()
        if checkpoint_path is None:
            logging.info("Could not find trained model in model_dir: %s, running initialization to predict.",
                         self.model_dir)
        with Graph().as_default() as graph, _closing_bar("predicting", "example") as bar:
            _, features, _, input_hooks = self._inputs(graph, input_fn, ModeKeys.PREDICT, with_labels=False)
            spec = self._call_model_fn(features, None, ModeKeys.PREDICT)
            predictions = _chosen_predictions(spec.predictions, predict_keys)
            creator = ChiefSessionCreator(spec.scaffold or Scaffold(), self._config.master,
                                          self._config.session_config, checkpoint_filename_with_path=checkpoint_path)
            with MonitoredSession(creator, [*input_hooks, *spec.prediction_hooks, *(hooks or ())]) as session:
                while not session.should_stop():
                    batch = session.run(predictions)
                    if not yield_single_examples:
                        bar.update(1)
                        yield batch
                        continue
                    for example in _examples(batch):
                        bar.update(1)
                        yield example

    # -- shared ----------------------------------------------------------------------------------------
    def _latest_step(self) -> int:
        checkpoint = self.latest_checkpoint()
        if checkpoint is None:
            return 0
        return int(load_checkpoint(checkpoint).get("global_step", 0))

    def _inputs(self, graph, input_fn, mode, with_labels=True):
        """(global step, features, labels, the hooks that feed them) for a new graph."""
        if self._config.tf_random_seed is not None:
            set_random_seed(self._config.tf_random_seed)
        global_step = get_or_create_global_step(graph)
        result = _call_input_fn(input_fn, mode, self._params, self._config)
        features, labels = result if isinstance(result, (tuple, list)) and len(result) == 2 else (result, None)
        hook = feeding_hook(graph)
        return global_step, features, labels if with_labels else None, [hook] if hook else []

    def _call_model_fn(self, features, labels, mode) -> EstimatorSpec:
        kwargs = {"features": features}
        if "labels" in self._model_fn_args:
            kwargs["labels"] = labels
        elif labels is not None:
            raise ValueError("model_fn does not take labels, but input_fn returns labels.")
        optional = {"mode": mode, "params": self._params, "config": self._config}
        kwargs.update({key: value for key, value in optional.items() if key in self._model_fn_args})
        spec = self._model_fn(**kwargs)
        if not isinstance(spec, EstimatorSpec):
            raise ValueError(f"model_fn should return an EstimatorSpec. Given: {spec!r}")
        return spec

    def _scaffold_with_saver(self, scaffold):
        """The model_fn's scaffold, with a Saver keeping config.keep_checkpoint_max checkpoints."""
        scaffold = scaffold or Scaffold()
        graph = get_default_graph()
        if scaffold.saver is None and not graph.get_collection(GraphKeys.SAVERS):
            graph.add_to_collection(GraphKeys.SAVERS, Saver(max_to_keep=self._config.keep_checkpoint_max,
                                                            allow_empty=True))
        return scaffold


def _call_input_fn(input_fn, mode, params, config):
    """input_fn(), given `mode`, `params` and `config` when it names them; a tf.data Dataset becomes its
    one-shot iterator's get_next()."""
    accepted = set(inspect.signature(input_fn).parameters)
    kwargs = {key: value for key, value in {"mode": mode, "params": params, "config": config}.items()
              if key in accepted}
    result = input_fn(**kwargs)
    if hasattr(result, "make_one_shot_iterator"):
        result = result.make_one_shot_iterator().get_next()
    return result


def _chosen_predictions(predictions, predict_keys):
    if predict_keys is None:
        return predictions
    if not isinstance(predictions, dict):
        raise ValueError("predict_keys argument is not valid in case of non-dict predictions.")
    keys = [predict_keys] if isinstance(predict_keys, str) else list(predict_keys)
    chosen = {key: predictions[key] for key in keys if key in predictions}
    if not chosen:
        raise ValueError(f"Expected to run at least one output from {sorted(predictions)}, provided {keys}.")
    return chosen


def _examples(batch):
    """The rows of a batch of predictions (a dict of arrays or one array) that share their first dimension."""
    if not isinstance(batch, dict):
        yield from batch
        return
    sizes = {np.shape(value)[0] if np.ndim(value) else None for value in batch.values()}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"Batch length of predictions should be same and at least rank 1: {sorted(map(str, sizes))}")
    for row in range(sizes.pop()):
        yield {key: value[row] for key, value in batch.items()}


@contextlib.contextmanager
def _closing_bar(description, unit):
    with progress.bar(None, description, unit=unit) as bar:
        yield bar


class _Progress(SessionRunHook):
    """Moves the bar one step per run; its total is known once the session has its global step."""

    def __init__(self, bar, steps, max_steps):
        self._bar, self._steps, self._max_steps = bar, steps, max_steps

    def begin(self):
        self._step = get_global_step()

    def after_create_session(self, session, coord):
        total = self._steps or (self._max_steps - int(session.run(self._step)) if self._max_steps else None)
        if total:
            self._bar.reset(total=total)

    def after_run(self, run_context, run_values):
        self._bar.update(1)


class _StopAfter(SessionRunHook):
    """Stops an evaluation after `steps` batches."""

    def __init__(self, steps):
        self._steps = steps

    def begin(self):
        self._done = 0

    def after_run(self, run_context, run_values):
        self._done += 1
        if self._done >= self._steps:
            run_context.request_stop()
