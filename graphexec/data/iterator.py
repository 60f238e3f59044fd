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
import weakref

from graphexec import errors
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

    def next_values(self, session) -> list:
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
