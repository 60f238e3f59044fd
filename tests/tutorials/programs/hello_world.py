"""Hello, world in TF1: a string constant fetched from a session (bytes), joined with a fed name, with the
string ops a first tutorial reaches for (length, split, upper case, formatting a number)."""
import graphexec as tf


def main():
    tf.reset_default_graph()
    hello = tf.constant("Hello, TensorFlow!")
    name = tf.placeholder(tf.string, [], name="name")
    greeting = tf.strings.join(["Hello, ", name, "!"])
    words = tf.string_split([greeting], delimiter=" ").values
    shout = tf.strings.upper(greeting)
    answer = tf.strings.join(["The answer is ", tf.as_string(tf.constant(6) * tf.constant(7))])
    with tf.Session() as sess:
        fetched = sess.run(hello)
        results = sess.run({"greeting": greeting, "words": words, "shout": shout, "answer": answer,
                            "length": tf.strings.length(greeting)}, {name: "graphexec"})
    return {"hello": fetched, "hello_is_bytes": isinstance(fetched, bytes), **results}


if __name__ == "__main__":
    for key, value in main().items():
        print(key, value)
