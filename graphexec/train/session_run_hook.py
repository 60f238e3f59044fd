"""SessionRunHook and its arguments (TF1's tf.train.SessionRunHook): the extension points of a
MonitoredSession. Per session: begin() while the graph can still change, after_create_session() once
variables are initialized or restored; per run: before_run() adds fetches and feeds, after_run() sees
their values; end() once at a normal close (or at the end of the input: OutOfRangeError)."""
from __future__ import annotations

import collections


class SessionRunHook:
    """A hook that does nothing; subclasses override the calls they need."""

    def begin(self):
        pass

    def after_create_session(self, session, coord):
        pass

    def before_run(self, run_context):
        return None

    def after_run(self, run_context, run_values):
        pass

    def end(self, session):
        pass


class SessionRunArgs(collections.namedtuple("SessionRunArgs", ["fetches", "feed_dict", "options"])):
    """What a hook adds to a run: fetches (any structure sess.run takes), feeds and run options."""

    def __new__(cls, fetches, feed_dict=None, options=None):
        return super().__new__(cls, fetches, feed_dict, options)


class SessionRunValues(collections.namedtuple("SessionRunValues", ["results", "options", "run_metadata"])):
    """The values of a hook's SessionRunArgs.fetches, in the same structure."""


class SessionRunContext:
    """The run in progress, as a hook sees it: the caller's arguments, the session, and a stop request."""

    def __init__(self, original_args, session):
        self._original_args = original_args
        self._session = session
        self._stop_requested = False

    @property
    def original_args(self):
        return self._original_args

    @property
    def session(self):
        return self._session

    @property
    def stop_requested(self):
        return self._stop_requested

    def request_stop(self):
        """Ask the MonitoredSession to stop: its should_stop() turns True after this run."""
        self._stop_requested = True
