"""A tf.app.run program: flags defined with tf.app.flags, parsed from the command line by tf.app.run,
which then calls main(argv) with the arguments it did not recognise. Run as a script with ARGV."""
import numpy as np

import graphexec as tf

flags = tf.app.flags
flags.DEFINE_integer("steps", 10, "training steps")
flags.DEFINE_float("learning_rate", 0.1, "gradient descent step size")
flags.DEFINE_string("run_name", "default", "label printed with the results")
flags.DEFINE_boolean("verbose", False, "print every step")
FLAGS = flags.FLAGS

ARGV = ["--steps=6", "--learning_rate=0.05", "--run_name=flags-demo", "--verbose", "extra"]


def main(argv):
    print("run", FLAGS.run_name, "steps", FLAGS.steps, "learning rate", FLAGS.learning_rate)
    print("unparsed arguments", argv[1:])
    target = np.array([[1.0, 2.0], [3.0, 4.0]])
    matrix = tf.Variable(np.zeros((2, 2)), name="matrix")
    loss = tf.reduce_sum(tf.square(matrix - target))
    train = tf.train.GradientDescentOptimizer(FLAGS.learning_rate).minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(FLAGS.steps):
            value, _ = sess.run([loss, train])
            if FLAGS.verbose:
                print("step", step, "loss", f"{value:.6f}")
        print("matrix", np.round(sess.run(matrix), 6).tolist())


if __name__ == "__main__":
    tf.app.run()
