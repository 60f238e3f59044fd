"""The programs behind train_golden.json, written once against the TF1 API so the same code runs under
real TensorFlow (make_train_golden.py) and under graphexec (test_train_more.py): `tf` is either module."""
import numpy as np

X = np.array([[1.0, 2.0], [0.5, -1.0], [-2.0, 0.25]], np.float32)
Y = np.array([1.0, -0.5, 2.0], np.float32)
STEPS = 4

OPTIMIZERS = {
    "adadelta": lambda tf: tf.train.AdadeltaOptimizer(1.0, rho=0.9, epsilon=1e-6),
    "adadelta_default": lambda tf: tf.train.AdadeltaOptimizer(),
    "ftrl": lambda tf: tf.train.FtrlOptimizer(0.5),
    "ftrl_l1_l2": lambda tf: tf.train.FtrlOptimizer(0.5, l1_regularization_strength=0.1,
                                                    l2_regularization_strength=0.2),
    "ftrl_power": lambda tf: tf.train.FtrlOptimizer(0.3, learning_rate_power=-0.7, initial_accumulator_value=0.2,
                                                    l1_regularization_strength=0.01,
                                                    l2_shrinkage_regularization_strength=0.05),
    "ftrl_beta": lambda tf: tf.train.FtrlOptimizer(0.5, beta=0.3),
    "proximal": lambda tf: tf.train.ProximalGradientDescentOptimizer(0.1),
    "proximal_l1_l2": lambda tf: tf.train.ProximalGradientDescentOptimizer(0.1, l1_regularization_strength=0.3,
                                                                           l2_regularization_strength=0.5),
}


def optimizer_program(tf, name):
    """Variables and slots after each of STEPS minimization steps on a small least-squares problem."""
    w = tf.Variable([[0.5], [-0.25]], name="w")
    b = tf.Variable(0.1, name="b")
    loss = tf.reduce_sum(tf.square(tf.squeeze(tf.matmul(X, w), 1) + b - Y))
    optimizer = OPTIMIZERS[name](tf)
    train = optimizer.minimize(loss)
    fetches = {"w": w, "b": b}
    for slot in optimizer.get_slot_names():
        fetches["w/" + slot] = optimizer.get_slot(w, slot)
    history = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(STEPS):
            sess.run(train)
            history.append({k: np.asarray(v).tolist() for k, v in sess.run(fetches).items()})
    return history


def ema_program(tf):
    """Shadows of a variable and a tensor after each of STEPS updates, with num_updates from a step counter."""
    w = tf.Variable([1.0, -2.0], name="w")
    step = tf.Variable(0, name="step", trainable=False)
    doubled = tf.multiply(w, 2.0, name="doubled")
    ema = tf.train.ExponentialMovingAverage(0.9, num_updates=step)
    with tf.control_dependencies([tf.assign_add(w, [0.5, 1.5]), tf.assign_add(step, 1)]):
        update = ema.apply([w, doubled])
    plain = tf.train.ExponentialMovingAverage(0.75, name="plain")
    plain_update = plain.apply([w])
    history = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(STEPS):
            sess.run(update)
            sess.run(plain_update)
            history.append([np.asarray(v).tolist() for v in
                            sess.run([ema.average(w), ema.average(doubled), plain.average(w), w])])
    names = {"average_name": ema.average_name(w), "shadow": ema.average(w).name,
             "restore": sorted(ema.variables_to_restore()),
             "restore_targets": sorted(v.name for v in ema.variables_to_restore().values())}
    return {"history": history, "names": names}
