"""Skip-gram word2vec with tf.nn.nce_loss on a few paragraphs written for this test. The negative samples
are drawn by numpy and passed through `sampled_values=` (TF1's own samplers are random), so every step is
reproducible; the result is the loss curve and each probe word's nearest neighbours by cosine."""
import collections

import numpy as np

import graphexec as tf

TEXT = """
the river runs past the mill and the mill turns slowly while the miller counts the sacks of grain
the baker buys the grain from the miller and the baker bakes bread for the town every morning
in the town the children walk to school along the river and the teacher rings the bell at nine
the teacher reads to the children and the children write stories about the river and the mill
at night the town is quiet and the river runs on past the mill under the moon and the stars
the miller sleeps and the baker wakes early to light the oven and the bread rises in the dark
"""
EMBEDDING = 16
NEGATIVES = 8
WINDOW = 2


def skipgram_pairs(words, index):
    pairs = []
    for position, word in enumerate(words):
        for offset in range(-WINDOW, WINDOW + 1):
            other = position + offset
            if offset and 0 <= other < len(words):
                pairs.append((index[word], index[words[other]]))
    return np.array(pairs, dtype=np.int64)


def main():
    tf.reset_default_graph()
    words = TEXT.split()
    vocabulary = [w for w, _ in collections.Counter(words).most_common()]
    index = {w: i for i, w in enumerate(vocabulary)}
    pairs = skipgram_pairs(words, index)
    rng = np.random.RandomState(5)
    size = len(vocabulary)
    counts = np.array([collections.Counter(words)[w] for w in vocabulary], dtype=np.float64)
    unigram = counts ** 0.75 / np.sum(counts ** 0.75)

    centers = tf.placeholder(tf.int64, [None], name="centers")
    contexts = tf.placeholder(tf.int64, [None, 1], name="contexts")
    sampled = tf.placeholder(tf.int64, [NEGATIVES], name="sampled")
    embeddings = tf.Variable(rng.uniform(-0.5, 0.5, size=(size, EMBEDDING)).astype(np.float32), name="embeddings")
    nce_weights = tf.Variable(rng.normal(scale=0.25, size=(size, EMBEDDING)).astype(np.float32), name="nce_w")
    nce_biases = tf.Variable(np.zeros(size, np.float32), name="nce_b")
    true_expected = tf.constant(np.ones((1, 1), np.float32))
    sampled_expected = tf.gather(tf.constant(unigram.astype(np.float32)) * NEGATIVES, sampled)
    loss = tf.reduce_mean(tf.nn.nce_loss(
        weights=nce_weights, biases=nce_biases, labels=contexts, inputs=tf.nn.embedding_lookup(embeddings, centers),
        num_sampled=NEGATIVES, num_classes=size, sampled_values=(sampled, true_expected, sampled_expected)))
    train = tf.train.AdagradOptimizer(0.5).minimize(loss)
    normalized = embeddings / tf.norm(embeddings, axis=1, keepdims=True)
    probes = tf.constant([index["river"], index["baker"], index["children"]], dtype=tf.int64)
    similarity = tf.matmul(tf.gather(normalized, probes), normalized, transpose_b=True)

    losses = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(60):
            batch = pairs[rng.choice(len(pairs), 64, replace=False)]
            negatives = rng.choice(size, NEGATIVES, replace=False, p=unigram)
            losses.append(sess.run([loss, train], {centers: batch[:, 0], contexts: batch[:, 1:],
                                                   sampled: negatives})[0])
        nearest = np.argsort(-sess.run(similarity), axis=1)[:, 1:4]
    return {"losses": losses, "vocabulary_size": size,
            "nearest": {vocabulary[i]: [vocabulary[j] for j in row]
                        for i, row in zip([index["river"], index["baker"], index["children"]], nearest)}}


if __name__ == "__main__":
    print(main())
