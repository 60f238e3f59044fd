"""TF1 dataset iterators: `make_one_shot_iterator`, `make_initializable_iterator`,
`Iterator.from_structure` + `make_initializer`, and `get_next()`.

`get_next()` gives placeholders (named IteratorGetNext...) of the element's components. A session whose
run needs them pulls the next element from this iterator, in the client's process, and feeds it
(BaseSession.run, through the graph collection ITERATORS). The end of the data is
`tf.errors.OutOfRangeError` from that `sess.run`, before anything is sent. An initializer is a NoOp that
the session intercepts: it resolves the dataset's tensor arguments with the run's feed dict and
(re)starts this session's position. Each session has its own position, as TF1's iterator resources do."""
from __future__ import annotations

import threading
import uuid
import weakref

import numpy as np

from graphexec import dtypes, errors
from graphexec.base_session import ITERATORS
from graphexec.data.structure import (
    flatten,
    pack_sequence_as,
    to_shape,
    typed_structure,
)
from graphexec.framework import get_default_graph
from graphexec.ops.array_ops import placeholder
from graphexec.ops.control_ops import no_op
from graphexec.ops.convert import constant


class Iterator:
    def __init__(self, dataset=None, one_shot: bool = False, structure=None):
        self.graph = get_default_graph()
        self._structure = dataset.structure if dataset is not None else structure
        self._one_shot = one_shot
        self._datasets: dict[str, object] = {}  # initializer op name -> dataset
        self._positions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # session -> element iterator
        self._lock = threading.Lock()
        self._outputs = None
        self._initializer = None
        self._handle = None
        if one_shot:
            self._one_shot_dataset = dataset
        elif dataset is not None:
            self._initializer = self.make_initializer(dataset, name="MakeIterator")
        self.graph.add_to_collection(ITERATORS, self)

    @staticmethod
    def from_structure(output_types, output_shapes=None, shared_name=None, output_classes=None):
        """A reinitializable iterator: `make_initializer(dataset)` points it at a dataset of this structure."""
        return Iterator(structure=typed_structure(output_types, output_shapes))

    def make_initializer(self, dataset, name=None):
        if [s.dtype for s in flatten(dataset.structure)] != [s.dtype for s in flatten(self._structure)]:
            raise TypeError(f"Expected output types {self.output_types} but got dataset with output types "
                            f"{dataset.output_types}.")
        op = no_op(name=name or "make_initializer")
        self._datasets[op.name] = dataset
        return op

    @property
    def initializer(self):
        if self._initializer is None:
            raise ValueError("Iterator does not have an initializer (a one-shot iterator initializes itself).")
        return self._initializer

    @property
    def output_types(self):
        return pack_sequence_as(self._structure, [s.dtype for s in flatten(self._structure)])

    @property
    def output_shapes(self):
        return pack_sequence_as(self._structure, [to_shape(s.shape) for s in flatten(self._structure)])

    def get_next(self, name=None):
        if self._outputs is None:
            base = name or "IteratorGetNext"
            with self.graph.as_default():
                self._outputs = [placeholder(s.dtype, s.shape, name=base if i == 0 else f"{base}_{i}")
                                 for i, s in enumerate(flatten(self._structure))]
        return pack_sequence_as(self._structure, self._outputs)

    # -- what BaseSession asks of an iterator ---------------------------------------------------------
    def initializer_names(self):
        return self._datasets.keys()

    def output_tensors(self) -> list:
        return self._outputs or []

    def initialize(self, session, initializer_name: str, feed_dict) -> None:
        self._start(session, self._datasets[initializer_name], feed_dict)

    def string_handle(self, name=None):
        """A string tensor naming this iterator, for `Iterator.from_string_handle` (feedable iterators)."""
        if self._handle is None:
            self._handle = f"graphexec-iterator-{uuid.uuid4().hex}"
            _BY_HANDLE[self._handle] = self
        with self.graph.as_default():
            return constant(self._handle, dtype=dtypes.string, name=name or "IteratorToStringHandle")

    @staticmethod
    def from_string_handle(string_handle, output_types, output_shapes=None, output_classes=None):
        """A feedable iterator: each run pulls from the iterator whose `string_handle()` value
        `string_handle` (a placeholder, usually) has in that run."""
        return _FeedableIterator(string_handle, typed_structure(output_types, output_shapes))

    def next_values(self, session, feed_dict=None) -> list:
        """The next element's components for `session`; OutOfRangeError at the end."""
        with self._lock:
            position = self._positions.get(session)
            if position is None:
                if not self._one_shot:
                    raise errors.FailedPreconditionError(
                        None, None, "GetNext() failed because the iterator has not been initialized. Ensure that "
                        "you have run the initializer operation for this iterator before getting the next element.")
                self._start(session, self._one_shot_dataset, None)
                position = self._positions[session]
            try:
                element = next(position)
            except StopIteration:
                raise errors.OutOfRangeError(None, None, "End of sequence") from None
            except errors.OpError:
                raise
            except Exception as exc:  # a failing stage (a generator, a bad record) is the run's failure
                raise errors.InvalidArgumentError(None, None, f"input pipeline: {type(exc).__name__}: {exc}") from exc
        return flatten(element)

    def _start(self, session, dataset, feed_dict) -> None:
        tensors = dataset._tensor_args()
        values = dict(zip(map(id, tensors), session.run(tensors, feed_dict))) if tensors else {}
        old = self._positions.pop(session, None)
        if old is not None:
            old.close()  # stops a prefetch thread of the old position
        self._positions[session] = iter(_generator(dataset, values))


def _generator(dataset, values):
    yield from dataset._elements(values)


_BY_HANDLE: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # string_handle() value -> iterator


class _FeedableIterator(Iterator):
    def __init__(self, handle, structure):
        super().__init__(structure=structure)
        self._handle_tensor = handle

    def next_values(self, session, feed_dict=None) -> list:
        handle = _fed_value(self._handle_tensor, feed_dict)
        if handle is None:
            handle = session.run(self._handle_tensor, feed_dict)
        handle = np.asarray(handle, dtype=object)[()]
        handle = handle.decode() if isinstance(handle, bytes) else str(handle)
        source = _BY_HANDLE.get(handle)
        if source is None:
            raise errors.InvalidArgumentError(None, None, f"no iterator has the string handle {handle!r}")
        if [s.dtype for s in flatten(source._structure)] != [s.dtype for s in flatten(self._structure)]:
            raise errors.InvalidArgumentError(None, None, "the iterator of the string handle has output types "
                                              f"{source.output_types}, this one {self.output_types}")
        return source.next_values(session, feed_dict)


def _fed_value(tensor, feed_dict):
    """The value `feed_dict` gives `tensor` (keyed by the tensor or its name), else None."""
    for key, value in (feed_dict or {}).items():
        if key is tensor or (isinstance(key, str) and key in (tensor.name, tensor.name[:-2])):
            return value
    return None
