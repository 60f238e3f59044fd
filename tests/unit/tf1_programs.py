"""TF1 programs over scopes, variables, initializers, collections, printing and tf.layers naming.

Each program takes the TF1 module (`graphexec`, or real TensorFlow's `tf.compat.v1` with v2 behaviour
disabled) and returns plain data: names, shapes, reprs, error messages and values. The golden file
(tests/unit/golden/tf1_api/scopes.json, from golden/tf1_api/make_scopes.py under real TensorFlow) holds what
TensorFlow returned; test_tf1_scopes.py checks graphexec returns the same.
"""
import numpy as np


def _names(items):
    return [getattr(i, "name", None) for i in items]


def _error(fn):
    try:
        fn()
    except (ValueError, TypeError) as exc:
        return f"{type(exc).__name__}: {str(exc).split(' Originally defined at:')[0]}"
    return None


def nested_scopes(tf):
    out = {}
    with tf.variable_scope("a") as a:
        with tf.variable_scope("b") as b:
            w = tf.get_variable("w", [2, 3])
            out["add_in_b"] = tf.add(w, 1.0).name
            with tf.name_scope("ns"):
                v = tf.get_variable("v", [1])
                out["mul_in_ns"] = tf.multiply(v, 2.0).name
        out["const_in_a"] = tf.constant(1.0).name
    out["scopes"] = [a.name, a.original_name_scope, b.name, b.original_name_scope]
    out["variables"] = [w.name, v.name]
    with tf.name_scope("outer"):
        with tf.variable_scope("vs") as vs:
            u = tf.get_variable("u", [3])
            out["add_in_outer_vs"] = tf.add(u, u).name
    out["vs_in_name_scope"] = [vs.name, vs.original_name_scope, u.name]
    with tf.variable_scope("a/b", reuse=True):
        out["a_b_reused"] = tf.get_variable("w", [2, 3]) is w
    out["current_scope_name"] = tf.get_variable_scope().name
    return out


def reuse(tf):
    out = {}
    with tf.variable_scope("model") as scope:
        w = tf.get_variable("w", [2], initializer=tf.constant_initializer(1.5))
        out["first_op"] = tf.identity(w).name
    with tf.variable_scope("model", reuse=True):
        out["reuse_true_same"] = tf.get_variable("w", [2]) is w
        out["reuse_true_op"] = tf.identity(w).name
        with tf.variable_scope("inner"):
            out["inherited_reuse"] = bool(tf.get_variable_scope().reuse)
    with tf.variable_scope(scope):
        out["reentered_op"] = tf.identity(w).name
        out["reentered_scope"] = [tf.get_variable_scope().name, tf.get_variable_scope().original_name_scope]
        scope.reuse_variables()  # the scope object, not the entered copy: this block still creates
        out["copy_not_reusing"] = _error(lambda: tf.get_variable("w"))
    with tf.variable_scope(scope):
        out["after_reuse_variables"] = tf.get_variable("w") is w
    with tf.variable_scope(scope, reuse=True) as again:
        out["object_reuse_same"] = tf.get_variable("w", [2]) is w
        out["object_scope"] = [again.name, again.original_name_scope]
    with tf.variable_scope("auto", reuse=tf.AUTO_REUSE):
        a1 = tf.get_variable("x", [3])
    with tf.variable_scope("auto", reuse=tf.AUTO_REUSE):
        a2 = tf.get_variable("x", [3])
        a3 = tf.get_variable("y", [1])
    out["auto_reuse"] = [a1 is a2, a3.name]
    with tf.variable_scope("shared"):
        s1 = tf.get_variable("s", [1])
        tf.get_variable_scope().reuse_variables()
        s2 = tf.get_variable("s", [1])
    out["reuse_variables_in_block"] = s1 is s2
    out["variables"] = _names(tf.global_variables())
    return out


def default_names(tf):
    out = {}
    names = []
    for _ in range(3):
        with tf.variable_scope(None, default_name="layer") as s:
            names.append([s.name, s.original_name_scope, tf.get_variable("w", [1]).name, tf.add(1, 2).name])
    out["three_layers"] = names
    with tf.variable_scope("net"):
        inner = []
        for _ in range(2):
            with tf.variable_scope(None, default_name="block") as s:
                inner.append([s.name, tf.get_variable("k", [1]).name])
        out["blocks_in_net"] = inner
    with tf.variable_scope("net", reuse=tf.AUTO_REUSE):
        with tf.variable_scope(None, default_name="block") as s:
            out["block_after_reopen"] = s.name  # closing `net` reset the counts of its subscopes
    with tf.variable_scope("layer_1", reuse=tf.AUTO_REUSE):
        pass
    with tf.variable_scope(None, default_name="layer") as s:
        out["layer_after_explicit"] = s.name
    with tf.variable_scope("vals", values=[tf.constant(1.0)]) as s:
        out["with_values"] = s.name
    return out


def name_scopes(tf):
    out = {}
    names = []
    for _ in range(3):
        with tf.name_scope("block") as scope:
            names.append([scope, tf.add(1, 2, name="sum").name])
    out["unique_blocks"] = names
    with tf.name_scope("outer") as outer:
        with tf.name_scope("inner") as inner:
            out["nested"] = [outer, inner, tf.constant(0, name="c").name]
    with tf.name_scope(outer):
        out["reentered_exact"] = tf.constant(0, name="c").name
    with tf.name_scope(None, "dflt"):
        out["default_name"] = tf.constant(0).name
    with tf.name_scope("outer"):
        with tf.name_scope(None):
            out["reset_to_root"] = tf.constant(0, name="root_c").name
    out["op_names"] = [tf.constant(1).name, tf.constant(1).name, tf.constant(1, name="Const").name]
    with tf.variable_scope("vs"):
        pass
    with tf.name_scope("vs"):
        out["name_scope_after_var_scope"] = tf.constant(1).name
    with tf.variable_scope("vs"):
        out["var_scope_again"] = [tf.constant(1).name, tf.get_variable("q", [1]).name]
    return out


def errors(tf):
    out = {}
    with tf.variable_scope("e"):
        tf.get_variable("w", [2])

    def create_again():
        with tf.variable_scope("e"):
            tf.get_variable("w", [2])

    def missing():
        with tf.variable_scope("e", reuse=True):
            tf.get_variable("nope", [2])

    def wrong_shape():
        with tf.variable_scope("e", reuse=True):
            tf.get_variable("w", [3])

    def wrong_dtype():
        with tf.variable_scope("e", reuse=True):
            tf.get_variable("w", [2], dtype=tf.float64)

    def constant_with_shape():
        tf.get_variable("c", [2], initializer=np.ones(2, np.float32))

    def reuse_without_name():
        with tf.variable_scope(None, default_name="d", reuse=True):
            pass

    def no_shape():
        tf.get_variable("noshape")

    def dtype_mismatch():
        tf.get_variable("m", initializer=np.ones(2, np.float64), dtype=tf.float32)

    def bad_scope_type():
        with tf.variable_scope(3):
            pass

    for name, fn in [("create_again", create_again), ("missing", missing), ("wrong_shape", wrong_shape),
                     ("wrong_dtype", wrong_dtype), ("constant_with_shape", constant_with_shape),
                     ("reuse_without_name", reuse_without_name), ("no_shape", no_shape),
                     ("dtype_mismatch", dtype_mismatch), ("bad_scope_type", bad_scope_type)]:
        out[name] = _error(fn)
    return out


def collections(tf):
    out = {}

    def l2(w):
        return tf.multiply(0.5, tf.reduce_sum(tf.square(w)), name="l2")

    with tf.variable_scope("net", regularizer=l2):
        w = tf.get_variable("w", [2], initializer=tf.ones_initializer())
        tf.get_variable("frozen", [1], trainable=False, initializer=tf.constant_initializer(-2.0))
        tf.get_variable("unregularized", [1], regularizer=lambda _: None)
    with tf.variable_scope("head"):
        tf.get_variable("b", [3], regularizer=l2, initializer=tf.constant_initializer([1.0, 2.0, 3.0]))
        tf.get_variable("loc", [1], collections=[tf.GraphKeys.LOCAL_VARIABLES], trainable=False)
        tf.Variable(1.0, name="plain")
    with tf.variable_scope("network"):
        tf.get_variable("z", [1])
    tf.add_to_collection("mine", w)
    tf.add_to_collection("mine", tf.constant(1.0, name="not_var"))
    keys = tf.GraphKeys
    out["global"] = _names(tf.global_variables())
    out["trainable"] = _names(tf.trainable_variables())
    out["local"] = _names(tf.local_variables())
    out["regularization"] = _names(tf.get_collection(keys.REGULARIZATION_LOSSES))
    out["scope_net"] = _names(tf.get_collection(keys.GLOBAL_VARIABLES, scope="net"))
    out["scope_net_slash"] = _names(tf.get_collection(keys.GLOBAL_VARIABLES, scope="net/"))
    out["scope_regex"] = _names(tf.get_collection(keys.GLOBAL_VARIABLES, scope="h.*d"))
    out["scope_trainable_head"] = _names(tf.trainable_variables(scope="head"))
    out["mine"] = _names(tf.get_collection("mine"))
    out["keys"] = [keys.GLOBAL_VARIABLES, keys.TRAINABLE_VARIABLES, keys.LOCAL_VARIABLES, keys.UPDATE_OPS,
                   keys.REGULARIZATION_LOSSES, keys.LOSSES, keys.SUMMARIES, keys.MODEL_VARIABLES]
    with tf.Session() as sess:
        sess.run([tf.global_variables_initializer(), tf.local_variables_initializer(), tf.tables_initializer()])
        out["regularization_values"] = [float(v) for v in sess.run(tf.get_collection(keys.REGULARIZATION_LOSSES))]
    return out


def initial_values(tf):
    out = {}
    with tf.variable_scope("init"):
        variables = [
            tf.get_variable("scalar_fill", [2, 2], initializer=tf.constant_initializer(0.25)),
            tf.get_variable("from_list", [2, 3], initializer=tf.constant_initializer([1, 2, 3, 4, 5, 6])),
            tf.get_variable("from_array", initializer=np.arange(6, dtype=np.float32).reshape(2, 3)),
            tf.get_variable("from_float64", initializer=np.linspace(0, 1, 3)),
            tf.get_variable("from_tensor", initializer=tf.constant([[1, 2]], dtype=tf.int32)),
            tf.get_variable("zeros", [3], initializer=tf.zeros_initializer()),
            tf.get_variable("ones", [2], dtype=tf.float64, initializer=tf.ones_initializer()),
            tf.get_variable("int_default", [2], dtype=tf.int32),
            tf.get_variable("callable", initializer=lambda: tf.constant([7.0, 8.0])),
        ]
    with tf.variable_scope("scoped_init", initializer=tf.constant_initializer(3.0)):
        variables.append(tf.get_variable("uses_scope_init", [2]))
        variables.append(tf.get_variable("overrides", [1], initializer=tf.zeros_initializer()))
    out["variables"] = [[v.name, v.shape.as_list(), v.dtype.base_dtype.name] for v in variables]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        out["values"] = [np.asarray(x).tolist() for x in sess.run(variables)]
    return out


def printing(tf):
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    unknown = tf.placeholder(tf.int32, name="unknown")
    scalar = tf.constant(2.0)
    w = tf.Variable(tf.zeros([2, 3]), name="w")
    with tf.variable_scope("s"):
        g = tf.get_variable("g", [3])
    y = tf.matmul(x, tf.transpose(w), name="y")
    return {
        "tensor_str": [str(x), str(unknown), str(scalar), str(y)],
        "tensor_repr": [repr(x), repr(unknown), repr(scalar), repr(y)],
        "variable": [str(w), repr(w), repr(g)],
        "shapes": [str(x.shape), repr(x.shape), str(unknown.shape), repr(unknown.shape), str(scalar.shape),
                   repr(scalar.shape), str(g.shape)],
        "op_repr": [repr(x.op), repr(y.op)],
        "shape_lists": [x.shape.as_list(), g.get_shape().as_list(), x.shape.ndims],
    }


def layer_names(tf):
    out = {}
    x = tf.placeholder(tf.float32, [None, 4], name="x")
    h = tf.layers.dense(x, 3, activation=tf.nn.relu)
    h = tf.layers.dense(h, 2)
    named = tf.layers.dense(x, 2, name="fc")
    shared = tf.layers.dense(x, 2, name="fc", reuse=True)
    out["dense"] = [h.name, named.name, shared.name]
    layer = tf.layers.Dense(5, name="cls")
    first, second = layer(x), layer(x)
    out["layer_object"] = [first.name, second.name, layer.kernel.name, layer.bias.name]
    with tf.variable_scope("tower"):
        t = tf.layers.dense(x, 1, use_bias=False)
    out["in_scope"] = t.name
    img = tf.placeholder(tf.float32, [None, 8, 8, 2], name="img")
    c = tf.layers.conv2d(img, 4, 3, padding="same", activation=tf.nn.relu)
    p = tf.layers.max_pooling2d(c, 2, 2)
    a = tf.layers.average_pooling2d(c, 2, 2, padding="same")
    bn = tf.layers.batch_normalization(p, training=True)
    bn_inference = tf.layers.batch_normalization(a, training=False)
    d = tf.layers.dropout(bn, rate=0.5, training=False)
    f = tf.layers.flatten(d)
    ct = tf.layers.conv2d_transpose(img, 3, 2, strides=2)
    seq = tf.placeholder(tf.float32, [None, 10, 3], name="seq")
    c1 = tf.layers.conv1d(seq, 4, 3)
    p1 = tf.layers.max_pooling1d(c1, 2, 2)
    out["tensors"] = [[t.name, t.shape.as_list()] for t in (c, p, a, bn_inference, f, ct, c1, p1)]
    out["bn_training_shape"] = bn.shape.as_list()
    out["global"] = _names(tf.global_variables())
    out["trainable"] = _names(tf.trainable_variables())
    out["update_ops"] = _names(tf.get_collection(tf.GraphKeys.UPDATE_OPS))
    with tf.variable_scope("reg"):
        tf.layers.dense(x, 2, kernel_regularizer=lambda k: tf.reduce_sum(tf.abs(k)))
    out["regularization_count"] = len(tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES))
    out["variable_shapes"] = [[v.name, v.shape.as_list()] for v in tf.global_variables()]
    return out


def layer_reuse(tf):
    out = {}
    x = tf.placeholder(tf.float32, [None, 4], name="x")
    first = tf.layers.dense(x, 2, name="shared", reuse=tf.AUTO_REUSE)
    second = tf.layers.dense(x, 2, name="shared", reuse=tf.AUTO_REUSE)
    out["auto_reuse"] = [first.name, second.name, len(tf.global_variables())]
    for tower in range(2):
        with tf.variable_scope("model", reuse=tower > 0):
            out.setdefault("towers", []).append(tf.layers.dense(x, 3, name="proj").name)
            out["towers"].append(tf.layers.conv1d(tf.expand_dims(x, -1), 2, 2, name="c1").name)
    layer = tf.layers.Dense(2)
    with tf.variable_scope("outer"):
        y = layer(x)
    with tf.variable_scope("elsewhere"):
        z = layer(x)  # a built layer keeps the scope of its first call
    out["layer_object"] = [y.name, z.name, layer.scope_name, [w.name for w in layer.trainable_weights]]
    norm = tf.layers.BatchNormalization(name="bn")
    norm(tf.placeholder(tf.float32, [None, 3]), training=True)
    out["bn_object"] = [[w.name for w in norm.trainable_weights], [w.name for w in norm.non_trainable_weights],
                        [u.name for u in norm.updates]]
    out["reuse_missing"] = _error(lambda: tf.layers.dense(x, 2, name="never_made", reuse=True))
    out["global"] = _names(tf.global_variables())
    return out


def custom_getters(tf):
    seen = []

    def outer(getter, name, *args, **kwargs):
        seen.append(["outer", name])
        return getter(name + "_o", *args, **kwargs)

    def inner(getter, name, *args, **kwargs):
        seen.append(["inner", name])
        kwargs["trainable"] = False
        return getter(name, *args, **kwargs)

    with tf.variable_scope("g", custom_getter=outer):
        a = tf.get_variable("a", [1])
        with tf.variable_scope("h", custom_getter=inner):
            b = tf.get_variable("b", [1])
    return {"seen": seen, "names": [a.name, b.name], "trainable": _names(tf.trainable_variables())}


PROGRAMS = {f.__name__: f for f in (custom_getters, layer_reuse, nested_scopes, reuse, default_names, name_scopes, errors, collections,
                                    initial_values, printing, layer_names)}


def run_all(tf):
    results = {}
    for name, program in PROGRAMS.items():
        with tf.Graph().as_default():
            results[name] = program(tf)
    return results
