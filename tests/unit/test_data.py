"""tf.data in-process: the programs of golden/data/programs.py give TensorFlow's batches and trained
numbers (golden/data/goldens.json, made by make_fixtures.py with real TensorFlow), TFRecords written by
TensorFlow read back and ours are byte-identical to TensorFlow's, and the TF1 iterator protocol holds."""
import gc
import json
import pathlib
import sys
import weakref

import numpy as np
import pytest

import graphexec as tf
from graphexec.data import tfrecord

FIXTURES = pathlib.Path(__file__).resolve().parent / "golden" / "data"
sys.path.insert(0, str(FIXTURES))
import programs

GOLDENS = json.loads((FIXTURES / "goldens.json").read_text())


@pytest.fixture(autouse=True)
def fresh_graph():
    tf.reset_default_graph()


def check_close(got, want):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64), rtol=1e-5,
                               atol=1e-6)


def test_one_shot_pipelines_give_tensorflows_batches():
    got = programs.one_shot(tf, tf.Session)
    assert got == GOLDENS["one_shot"]


def test_training_from_tfrecords_written_by_tensorflow_matches_tensorflow():
    got = programs.train_from_files(tf, tf.Session, FIXTURES)
    want = GOLDENS["train_from_files"]
    assert got["targets"] == want["targets"]
    check_close(got["losses"], want["losses"])
    check_close(got["w"], want["w"])
    check_close(got["b"], want["b"])


def test_parse_example_of_batches_gives_sparse_var_len_features():
    assert programs.parse_batch(tf, tf.Session, FIXTURES) == GOLDENS["parse_batch"]


def test_our_tfrecord_writer_writes_tensorflows_bytes(tmp_path):
    source = FIXTURES / programs.FILES[0]
    records = list(tfrecord.read_records(str(source)))
    with tf.io.TFRecordWriter(str(tmp_path / "copy.tfrecord")) as writer:
        for record in records:
            writer.write(record)
    assert (tmp_path / "copy.tfrecord").read_bytes() == source.read_bytes()


def test_examples_we_build_parse_as_tensorflows():
    example = tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0, 2.5, -3.0])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[7]))}))
    record = tf.placeholder(tf.string, [])
    x, target = programs.parse(tf, record)
    with tf.Session() as sess:
        got_x, got_target = sess.run([x, target], {record: example.SerializeToString()})
    assert got_x.tolist() == [1.0, 2.5, -3.0] and float(got_target) == 7.0  # weight defaults to 1.0


def test_a_damaged_record_is_data_loss(tmp_path):
    data = bytearray((FIXTURES / programs.FILES[0]).read_bytes())
    data[20] ^= 0xFF
    (tmp_path / "bad.tfrecord").write_bytes(bytes(data))
    next_record = tf.data.make_one_shot_iterator(tf.data.TFRecordDataset(str(tmp_path / "bad.tfrecord"))).get_next()
    with tf.Session() as sess, pytest.raises(tf.errors.DataLossError, match="bad data checksum"):
        sess.run(next_record)


def test_out_of_range_ends_each_pass_and_reinitializing_restarts():
    values = tf.placeholder(tf.int32, [None])
    iterator = tf.data.Dataset.from_tensor_slices(values).make_initializable_iterator()
    element = iterator.get_next()
    doubled = element * 2
    with tf.Session() as sess:
        with pytest.raises(tf.errors.FailedPreconditionError, match="not been initialized"):
            sess.run(doubled)
        for feed in ([1, 2, 3], [9]):
            sess.run(iterator.initializer, {values: feed})
            seen = []
            while True:
                try:
                    seen.append(int(sess.run(doubled)))
                except tf.errors.OutOfRangeError:
                    break
            assert seen == [2 * v for v in feed]
            with pytest.raises(tf.errors.OutOfRangeError):  # stays at the end, as TF's
                sess.run(element)
        assert int(sess.run(doubled, {element: 50})) == 100  # a fed element does not pull


def test_each_session_has_its_own_position_and_one_run_pulls_once():
    element = tf.data.Dataset.range(5).make_one_shot_iterator().get_next()
    pair = [element, element + 100]
    with tf.Session() as first, tf.Session() as second:
        assert [int(v) for v in first.run(pair)] == [0, 100]
        assert int(second.run(element)) == 0
        assert int(first.run(element)) == 1


def test_map_over_a_user_graph_tensor_fails_at_trace_time():
    scale = tf.Variable(2.0)
    with pytest.raises(Exception, match="graph"):
        tf.data.Dataset.range(3).map(lambda i: tf.cast(i, tf.float32) * scale)


def test_shuffle_with_a_seed_is_a_repeatable_permutation():
    def order():
        tf.reset_default_graph()
        element = tf.data.Dataset.range(20).shuffle(8, seed=3).make_one_shot_iterator().get_next()
        with tf.Session() as sess:
            return [int(sess.run(element)) for _ in range(20)]

    first = order()
    assert first == order() and sorted(first) == list(range(20)) and first != list(range(20))


def test_make_callable_pulls_the_next_element():
    element = tf.data.Dataset.from_tensor_slices(np.array([1.5, 2.5], np.float32)).make_one_shot_iterator().get_next()
    with tf.Session() as sess:
        step = sess.make_callable(element * 2)
        assert [float(step()), float(step())] == [3.0, 5.0]
        with pytest.raises(tf.errors.OutOfRangeError):
            step()


def test_a_pulled_element_is_freed_by_reference_counting_alone():
    """No reference cycle keeps a batch alive until the garbage collector runs (a 1 GB loop would hold
    hundreds of MB of old batches otherwise)."""
    made = []

    def batches():
        for i in range(3):
            batch = np.full([4], i, np.float32)
            made.append(weakref.ref(batch))
            yield batch

    element = tf.data.Dataset.from_generator(batches, tf.float32, [4]).make_one_shot_iterator().get_next()
    gc.disable()
    try:
        with tf.Session() as sess:
            assert sess.run(element).tolist() == [0.0] * 4
            assert sess.run(element).tolist() == [1.0] * 4
            assert made[0]() is None
    finally:
        gc.enable()


def test_parallel_map_keeps_the_input_order():
    squares = tf.data.Dataset.range(40).map(lambda i: i * i, num_parallel_calls=4).batch(40)
    with tf.Session() as sess:
        assert sess.run(squares.make_one_shot_iterator().get_next()).tolist() == [i * i for i in range(40)]


def test_a_feedable_iterator_switches_by_string_handle():
    assert programs.feedable(tf, tf.Session) == GOLDENS["feedable"]


def test_cache_belongs_to_one_initialization():
    values = tf.placeholder(tf.int32, [None])
    iterator = tf.data.Dataset.from_tensor_slices(values).cache().repeat(2).batch(10).make_initializable_iterator()
    element = iterator.get_next()
    with tf.Session() as sess:
        sess.run(iterator.initializer, {values: [1, 2]})
        assert sess.run(element).tolist() == [1, 2, 1, 2]
        sess.run(iterator.initializer, {values: [7]})
        assert sess.run(element).tolist() == [7, 7]
