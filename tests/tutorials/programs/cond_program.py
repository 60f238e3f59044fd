"""tf.cond and tf.case choose a branch at run time: a piecewise function of a fed scalar, a branch that
updates a variable only when a flag is fed true (the other branch leaves it alone), and tf.case picking a
learning-rate schedule by step."""
import graphexec as tf


def main():
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [], name="x")
    piecewise = tf.cond(x < 0.0, lambda: -x, lambda: tf.cond(x < 2.0, lambda: x * x, lambda: 4.0 + tf.sqrt(x - 2.0)))

    counter = tf.Variable(0, name="counter")
    bump = tf.placeholder(tf.bool, [], name="bump")
    maybe_bump = tf.cond(bump, lambda: tf.assign_add(counter, 10), lambda: tf.identity(counter))

    step = tf.placeholder(tf.int32, [], name="step")
    rate = tf.case([(step < 10, lambda: tf.constant(0.1)), (step < 20, lambda: tf.constant(0.01))],
                   default=lambda: tf.constant(0.001), exclusive=False)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        values = [sess.run(piecewise, {x: v}) for v in (-3.0, 0.5, 1.5, 6.0)]
        counters = [sess.run(maybe_bump, {bump: flag}) for flag in (True, False, True, True, False)]
        rates = [sess.run(rate, {step: s}) for s in (0, 9, 10, 19, 20, 100)]
    return {"piecewise": values, "counters": counters, "rates": rates}


if __name__ == "__main__":
    print(main())
