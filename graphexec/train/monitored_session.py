"""MonitoredSession and MonitoredTrainingSession (TF1's tf.train): a session that initializes or restores
the model, calls hooks around every run, and tells the training loop when to stop.

    with tf.train.MonitoredTrainingSession(checkpoint_dir=d, hooks=[tf.train.StopAtStepHook(last_step=100)]) as s:
        while not s.should_stop():
            s.run(train_op)

The session is a plain tf.Session: in-process, or on a server with `master="grpc://..."` or GRAPHEXEC_TARGET.
Reaching the end of the input (OutOfRangeError, StopIteration) ends the `with` block quietly, as in TF.
"""
from __future__ import annotations

from graphexec import errors
from graphexec import tf_logging as logging
from graphexec.framework import get_default_graph
from graphexec.initializers import tables_initializer
from graphexec.ops.control_ops import group
from graphexec.session import Session
from graphexec.summary import merge_all
from graphexec.summary.writer_cache import FileWriterCache
from graphexec.train.basic_hooks import CheckpointSaverHook, StepCounterHook, SummarySaverHook
from graphexec.train.saver import Saver, latest_checkpoint
from graphexec.train.session_run_hook import SessionRunArgs, SessionRunContext, SessionRunValues
from graphexec.variables import GraphKeys, global_variables_initializer, local_variables_initializer

USE_DEFAULT = object()


class Scaffold:
    """The ops a MonitoredSession needs to start: init/local-init ops, a saver and the summary op.
    Those not given are made by finalize() (or taken from the graph's collections), which then freezes
    the graph."""

    def __init__(self, init_op=None, init_feed_dict=None, init_fn=None, ready_op=None,
                 ready_for_local_init_op=None, local_init_op=None, summary_op=None, saver=None,
                 copy_from_scaffold=None, local_init_feed_dict=None):
        if copy_from_scaffold is not None:
            if not isinstance(copy_from_scaffold, Scaffold):
                raise TypeError("copy_from_scaffold is not a Scaffold instance.")
            init_op = init_op or copy_from_scaffold.init_op
            init_feed_dict = init_feed_dict or copy_from_scaffold.init_feed_dict
            init_fn = init_fn or copy_from_scaffold._user_init_fn
            local_init_op = local_init_op or copy_from_scaffold.local_init_op
            local_init_feed_dict = local_init_feed_dict or copy_from_scaffold.local_init_feed_dict
            summary_op = summary_op or copy_from_scaffold.summary_op
            saver = saver or copy_from_scaffold.saver
        self._init_op, self._init_feed_dict, self._user_init_fn = init_op, init_feed_dict, init_fn
        self._ready_op, self._ready_for_local_init_op = ready_op, ready_for_local_init_op
        self._local_init_op, self._local_init_feed_dict = local_init_op, local_init_feed_dict
        self._summary_op, self._saver = summary_op, saver

    def finalize(self):
        graph = get_default_graph()
        if graph.finalized:
            return self
        if self._init_op is None:
            self._init_op = _one_in(graph, GraphKeys.INIT_OP) or global_variables_initializer()
        if self._local_init_op is None:
            self._local_init_op = _one_in(graph, GraphKeys.LOCAL_INIT_OP) or group(
                local_variables_initializer(), tables_initializer())
        if self._summary_op is None:
            self._summary_op = _one_in(graph, GraphKeys.SUMMARY_OP) or merge_all()
        if self._saver is None:
            self._saver = _one_in(graph, GraphKeys.SAVERS) or Saver(allow_empty=True)
        graph.finalize()
        return self

    init_op = property(lambda self: self._init_op)
    init_feed_dict = property(lambda self: self._init_feed_dict)
    init_fn = property(lambda self: None if self._user_init_fn is None else
                       (lambda sess: self._user_init_fn(self, sess)))
    ready_op = property(lambda self: self._ready_op)
    ready_for_local_init_op = property(lambda self: self._ready_for_local_init_op)
    local_init_op = property(lambda self: self._local_init_op)
    local_init_feed_dict = property(lambda self: self._local_init_feed_dict)
    summary_op = property(lambda self: self._summary_op)
    saver = property(lambda self: self._saver)


def _one_in(graph, key):
    items = graph.get_collection(key)
    if len(items) > 1:
        raise RuntimeError(f"More than one item in the collection {key}. Please indicate which one to use by "
                           f"passing it to the scaffold.")
    return items[0] if items else None


class SessionCreator:
    """Makes the session a MonitoredSession runs (create_session())."""

    def create_session(self):
        raise NotImplementedError("create_session is not implemented for this SessionCreator")


class ChiefSessionCreator(SessionCreator):
    """Creates a session and prepares the model: restore `checkpoint_filename_with_path`, or the latest
    checkpoint in `checkpoint_dir`, else run the init op (and init_fn); then the local init op."""

    def __init__(self, scaffold=None, master="", config=None, checkpoint_dir=None, checkpoint_filename_with_path=None):
        self._scaffold = scaffold or Scaffold()
        self._master, self._config = master, config
        self._checkpoint_dir, self._checkpoint_path = checkpoint_dir, checkpoint_filename_with_path

    def create_session(self):
        scaffold = self._scaffold.finalize()
        session = Session(self._master, graph=get_default_graph(), config=self._config)
        try:
            checkpoint = self._checkpoint_path or (latest_checkpoint(self._checkpoint_dir)
                                                   if self._checkpoint_dir else None)
            if checkpoint:
                logging.info("Restoring parameters from %s", checkpoint)
                scaffold.saver.restore(session, checkpoint)
            else:
                session.run(scaffold.init_op, feed_dict=scaffold.init_feed_dict)
                if scaffold.init_fn is not None:
                    scaffold.init_fn(session)
            session.run(scaffold.local_init_op, feed_dict=scaffold.local_init_feed_dict)
        except BaseException:
            session.close()
            raise
        return session


WorkerSessionCreator = ChiefSessionCreator  # one process is chief and worker: nothing to wait for


class Coordinator:
    """What hooks get beside the session in after_create_session: a stop flag the loop obeys."""

    def __init__(self):
        self._stop, self._exception = False, None

    def request_stop(self, ex=None):
        self._stop = True
        self._exception = self._exception or ex

    def should_stop(self) -> bool:
        return self._stop

    def join(self, threads=None, stop_grace_period_secs=120, ignore_live_threads=False):
        if self._exception is not None:
            raise self._exception


class _MonitoredSession:
    def __init__(self, session_creator, hooks, raw_session_access):
        self._hooks = list(hooks or ())
        self._graph = get_default_graph()
        for hook in self._hooks:
            hook.begin()
        self._creator = session_creator or ChiefSessionCreator()
        self._session = self._creator.create_session()
        self._coord = Coordinator()
        self._should_stop = False
        try:
            for hook in self._hooks:
                hook.after_create_session(self._session, self._coord)
        except BaseException:
            self._session.close()
            raise

    @property
    def graph(self):
        return self._graph

    def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
        """sess.run with every hook's before_run fetches and feeds added and its after_run called."""
        if self.should_stop():
            raise RuntimeError("Run called even after should_stop requested.")
        context = SessionRunContext(SessionRunArgs(fetches, feed_dict), self._session)
        requests, hook_feeds = [], {}
        for hook in self._hooks:
            request = hook.before_run(context)
            requests.append(request.fetches if request is not None else None)
            if request is not None and request.feed_dict:
                conflicts = [str(key) for key in request.feed_dict if key in hook_feeds]
                if conflicts:
                    raise RuntimeError(f"Same tensor is fed by two hooks. Conflict(s): {conflicts}")
                hook_feeds.update(request.feed_dict)
        if hook_feeds:
            conflicts = [str(key) for key in feed_dict or () if key in hook_feeds]
            if conflicts:
                raise RuntimeError(f"Same tensor is fed by a SessionRunHook and user. Conflict(s): {conflicts}")
            feed_dict = {**(feed_dict or {}), **hook_feeds}
        asked = [i for i, request in enumerate(requests) if request is not None]
        try:
            results = self._session.run([fetches, [requests[i] for i in asked]], feed_dict, options, run_metadata)
        except BaseException as error:
            if not isinstance(error, (errors.OutOfRangeError, StopIteration)):
                self._coord.request_stop(error)
            raise
        values = dict(zip(asked, results[1]))
        for i, hook in enumerate(self._hooks):
            hook.after_run(context, SessionRunValues(values.get(i), options, run_metadata))
        self._should_stop = self._should_stop or context.stop_requested
        return results[0]

    def run_step_fn(self, step_fn):
        """step_fn(step_context): step_context.run_with_hooks runs with the hooks; request_stop stops."""
        return step_fn(_StepContext(self))

    def should_stop(self) -> bool:
        return self._should_stop or self._coord.should_stop() or self._session is None

    def close(self):
        self._close(None)

    def _close(self, exception_type):
        if self._session is None:
            return
        try:
            if exception_type is None:
                for hook in self._hooks:
                    hook.end(self._session)
        finally:
            self._session.close()
            self._session = None
            FileWriterCache.clear()  # the hooks' events are on disk when the session is closed

    def __enter__(self):
        return self

    def __exit__(self, exception_type, exception_value, traceback):
        if exception_type in (errors.OutOfRangeError, StopIteration):
            exception_type = None  # the input is exhausted: a normal end
        self._close(exception_type)
        return exception_type is None and exception_value is not None


class _StepContext:
    def __init__(self, monitored):
        self._monitored = monitored

    @property
    def session(self):
        return self._monitored._session

    def run_with_hooks(self, *args, **kwargs):
        return self._monitored.run(*args, **kwargs)

    def request_stop(self):
        self._monitored._should_stop = True


class MonitoredSession(_MonitoredSession):
    """A session with hooks, prepared by `session_creator` (default: ChiefSessionCreator)."""

    def __init__(self, session_creator=None, hooks=None, stop_grace_period_secs=120):
        super().__init__(session_creator, hooks, raw_session_access=False)


class SingularMonitoredSession(_MonitoredSession):
    """A MonitoredSession for one process, which also gives access to the plain session."""

    def __init__(self, hooks=None, scaffold=None, master="", config=None, checkpoint_dir=None,
                 stop_grace_period_secs=120, checkpoint_filename_with_path=None):
        creator = ChiefSessionCreator(scaffold, master, config, checkpoint_dir, checkpoint_filename_with_path)
        super().__init__(creator, hooks, raw_session_access=True)

    def raw_session(self):
        return self._session


def _chosen(steps, secs, default_steps, default_secs):
    """TF's rule for a (steps, secs) pair where either may be left at its default."""
    if steps is USE_DEFAULT and secs is USE_DEFAULT:
        return default_steps, default_secs
    return (None if steps is USE_DEFAULT else steps), (None if secs is USE_DEFAULT else secs)


def MonitoredTrainingSession(master="", is_chief=True, checkpoint_dir=None, scaffold=None, hooks=None,  # noqa: N802
                             chief_only_hooks=None, save_checkpoint_secs=USE_DEFAULT,
                             save_summaries_steps=USE_DEFAULT, save_summaries_secs=USE_DEFAULT, config=None,
                             stop_grace_period_secs=120, log_step_count_steps=100, max_wait_secs=7200,
                             save_checkpoint_steps=USE_DEFAULT, summary_dir=None, save_graph_def=True):
    """A MonitoredSession for training: the chief restores from or initializes `checkpoint_dir`, and adds
    a StepCounterHook, a SummarySaverHook (every 100 steps by default) and a CheckpointSaverHook (every
    600 s by default) in front of `hooks`."""
    summary_steps, summary_secs = _chosen(save_summaries_steps, save_summaries_secs, 100, None)
    checkpoint_steps, checkpoint_secs = _chosen(save_checkpoint_steps, save_checkpoint_secs, None, 600)
    scaffold = scaffold or Scaffold()
    creator = ChiefSessionCreator(scaffold, master, config, checkpoint_dir)
    all_hooks = list(chief_only_hooks or ()) if is_chief else []
    summary_dir = summary_dir or checkpoint_dir
    if is_chief and summary_dir:
        if log_step_count_steps and log_step_count_steps > 0:
            all_hooks.append(StepCounterHook(output_dir=summary_dir, every_n_steps=log_step_count_steps))
        if (summary_steps and summary_steps > 0) or (summary_secs and summary_secs > 0):
            all_hooks.append(SummarySaverHook(save_steps=summary_steps, save_secs=summary_secs, scaffold=scaffold,
                                              output_dir=summary_dir))
    if is_chief and checkpoint_dir and ((checkpoint_steps and checkpoint_steps > 0)
                                        or (checkpoint_secs and checkpoint_secs > 0)):
        all_hooks.append(CheckpointSaverHook(checkpoint_dir, save_steps=checkpoint_steps, save_secs=checkpoint_secs,
                                             scaffold=scaffold, save_graph_def=save_graph_def))
    all_hooks.extend(hooks or ())
    return MonitoredSession(creator, all_hooks, stop_grace_period_secs)
