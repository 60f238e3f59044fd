"""TF1 programs using tf.data, written once against a module `tf` (real TensorFlow's tf.compat.v1 in
make_fixtures.py, graphexec in tests/unit/test_data.py and tests/integration/test_data_remote.py).
Each returns plain lists, compared with the golden file goldens.json."""
import numpy as np

FILES = ["train-0.tfrecord", "train-1.tfrecord"]


def one_shot(tf, make_session):
    """Slices, map, filter, batch, repeat, take, skip, zip, range, padded_batch, from_generator, cache."""
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.arange(6, dtype=np.int64)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).map(lambda a, b: (a * 2.0 + 1.0, b * 10), num_parallel_calls=2)
    ds = ds.filter(lambda a, b: tf.not_equal(b, 20)).batch(2).repeat(2).skip(1).take(4)
    feats, labels = tf.data.make_one_shot_iterator(ds).get_next()
    total = tf.reduce_sum(feats, axis=1)

    squares = tf.data.Dataset.range(1, 6).map(lambda i: tf.fill([tf.cast(i, tf.int32)], i * i))
    padded = squares.padded_batch(2, padded_shapes=[None], padding_values=tf.constant(-1, tf.int64))
    zipped = tf.data.Dataset.zip((tf.data.Dataset.range(3), tf.data.Dataset.range(10, 20))).cache().repeat(2)

    def gen():
        for i in range(5):
            yield {"v": np.full([3], i, np.float32), "n": i}

    generated = tf.data.Dataset.from_generator(gen, {"v": tf.float32, "n": tf.int32}, {"v": [3], "n": []})
    generated = generated.batch(2, drop_remainder=True).prefetch(2)
    padded_next = tf.data.make_one_shot_iterator(padded).get_next()
    zipped_next = tf.data.make_one_shot_iterator(zipped).get_next()
    generated_next = tf.data.make_one_shot_iterator(generated).get_next()
    with make_session() as sess:
        out = {"batches": [[f.tolist(), lab.tolist(), t.tolist()] for f, lab, t in _drain_tf(tf, sess, (feats, labels, total))],
               "padded": [p.tolist() for p in _drain_tf(tf, sess, padded_next)],
               "zipped": [[int(a), int(b)] for a, b in _drain_tf(tf, sess, zipped_next)],
               "generated": [[g["v"].tolist(), g["n"].tolist()] for g in _drain_tf(tf, sess, generated_next)]}
    return out


def _drain_tf(tf, sess, fetch, feed=None):
    out = []
    while True:
        try:
            out.append(sess.run(fetch, feed))
        except tf.errors.OutOfRangeError:
            return out


def parse(tf, record):
    features = {"x": tf.FixedLenFeature([3], tf.float32), "label": tf.FixedLenFeature([], tf.int64),
                "weight": tf.FixedLenFeature([], tf.float32, default_value=1.0)}
    parsed = tf.parse_single_example(record, features)
    return parsed["x"], tf.cast(parsed["label"], tf.float32) * parsed["weight"]


def train_from_files(tf, make_session, fixture_dir):
    """An initializable iterator over a placeholder-fed file list of TFRecords (written by TensorFlow),
    parsed and batched, trains a linear model; re-initialized for a second epoch over one file."""
    filenames = tf.placeholder(tf.string, [None])
    ds = tf.data.TFRecordDataset(filenames).map(lambda r: parse(tf, r)).batch(4)
    iterator = tf.data.make_initializable_iterator(ds)
    x, target = iterator.get_next()
    w = tf.Variable(tf.zeros([3, 1]), name="w")
    b = tf.Variable(0.0, name="b")
    prediction = tf.squeeze(tf.matmul(x, w), axis=1) + b
    loss = tf.reduce_mean(tf.square(prediction - target))
    train = tf.train.GradientDescentOptimizer(0.05).minimize(loss)
    paths = [str(fixture_dir / f) for f in FILES]
    losses, targets = [], []
    with make_session() as sess:
        sess.run(tf.global_variables_initializer())
        for epoch_files in (paths, paths[:1]):
            sess.run(iterator.initializer, {filenames: epoch_files})
            while True:
                try:
                    step_loss, _, t = sess.run([loss, train, target])
                except tf.errors.OutOfRangeError:
                    break
                losses.append(float(step_loss))
                targets.append(t.tolist())
        w_value, b_value = sess.run([w, b])
    return {"losses": losses, "targets": targets, "w": w_value.tolist(), "b": float(b_value)}


def parse_batch(tf, make_session, fixture_dir):
    """tf.parse_example on batches of records: a VarLenFeature of strings as a SparseTensor."""
    ds = tf.data.TFRecordDataset([str(fixture_dir / FILES[0])]).batch(3)
    records = tf.data.make_one_shot_iterator(ds).get_next()
    parsed = tf.parse_example(records, {"tags": tf.VarLenFeature(tf.string), "label": tf.FixedLenFeature([], tf.int64)})
    tags = parsed["tags"]
    with make_session() as sess:
        out = []
        for value in _drain_tf(tf, sess, (tags.indices, tags.values, tags.dense_shape, parsed["label"])):
            indices, values, shape, label = value
            out.append([indices.tolist(), [v.decode() for v in values], shape.tolist(), label.tolist()])
    return out


def feedable(tf, make_session):
    """A feedable iterator switches between a training and a validation iterator by string handle."""
    handle = tf.placeholder(tf.string, [])
    training = tf.data.Dataset.range(100).map(lambda i: i * 2).batch(3)
    validation = tf.data.Dataset.range(5).batch(2)
    iterator = tf.data.Iterator.from_string_handle(handle, training.output_types, training.output_shapes)
    element = iterator.get_next()
    training_iterator = tf.data.make_one_shot_iterator(training)
    validation_iterator = tf.data.make_initializable_iterator(validation)
    out = []
    with make_session() as sess:
        training_handle, validation_handle = sess.run([training_iterator.string_handle(),
                                                       validation_iterator.string_handle()])
        for _ in range(2):
            out.append(sess.run(element, {handle: training_handle}).tolist())
            sess.run(validation_iterator.initializer)
            out.append([b.tolist() for b in _drain_tf(tf, sess, element, {handle: validation_handle})])
    return out
