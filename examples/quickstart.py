"""The quickstart: TF1 code, unchanged but for the import. Runs remotely when GRAPHEXEC_TARGET is set."""
import graphexec as tf

x = tf.constant([3, 5, 7]); y = tf.constant([1, 2, 3]); z = tf.add(x, y)
with tf.Session() as sess: print(sess.run(z))            # [ 4  7 10]
x = tf.constant([[3, 5, 7], [4, 6, 8]]); y = x[:, 1]
with tf.Session() as sess: print(y.eval())               # [5 6]
y = tf.reshape(x, [3, 2])
with tf.Session() as sess: print(y.eval())               # [[3 5] [7 4] [6 8]]
a = tf.placeholder(tf.int16); b = tf.placeholder(tf.int16)
with tf.Session() as sess: print(sess.run(tf.add(a, b), feed_dict={a: 2, b: 3}))   # 5
