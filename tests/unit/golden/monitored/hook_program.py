"""One program for real TensorFlow (make_golden.py) and graphexec (test_monitored_session.py): a
recording hook beside StopAtStepHook and the chief's default hooks of MonitoredTrainingSession."""
import os


def program(tf, directory):
    calls = []

    class Recorder(tf.train.SessionRunHook):
        def begin(self):
            calls.append(["begin"])

        def after_create_session(self, session, coord):
            calls.append(["after_create_session", int(session.run(tf.train.get_global_step()))])

        def before_run(self, run_context):
            calls.append(["before_run", sorted(run_context.original_args.fetches)])
            return tf.train.SessionRunArgs({"loss": loss})

        def after_run(self, run_context, run_values):
            calls.append(["after_run", round(float(run_values.results["loss"]), 5), run_context.stop_requested])

        def end(self, session):
            calls.append(["end", int(session.run(tf.train.get_global_step()))])

    graph = tf.Graph()
    with graph.as_default():
        step = tf.train.get_or_create_global_step()
        weight = tf.Variable(2.0, name="weight")
        loss = tf.square(weight - 5.0)
        tf.summary.scalar("loss", loss)
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=step)
        results = []
        with tf.train.MonitoredTrainingSession(
                checkpoint_dir=directory, save_checkpoint_steps=2, save_summaries_steps=1, log_step_count_steps=2,
                hooks=[Recorder(), tf.train.StopAtStepHook(last_step=5)]) as sess:
            while not sess.should_stop():
                out = sess.run({"train": train, "loss": loss})
                results.append(round(float(out["loss"]), 5))
    steps = checkpoint_steps(directory)
    latest = tf.train.latest_checkpoint(directory)

    # A second session resumes from the latest checkpoint and stops at once: the hook sees the restored step.
    resumed = []
    graph = tf.Graph()
    with graph.as_default():
        step = tf.train.get_or_create_global_step()
        weight = tf.Variable(2.0, name="weight")
        train = tf.train.GradientDescentOptimizer(0.1).minimize(tf.square(weight - 5.0), global_step=step)
        with tf.train.MonitoredTrainingSession(checkpoint_dir=directory, save_checkpoint_steps=2,
                                               hooks=[tf.train.StopAtStepHook(last_step=7)]) as sess:
            resumed.append(round(float(sess.run(weight)), 5))
            while not sess.should_stop():
                sess.run(train)
    return {"calls": calls, "losses": results, "checkpoint_steps": steps,
            "latest": os.path.basename(latest), "resumed_weight": resumed[0],
            "final_steps": checkpoint_steps(directory)}


def checkpoint_steps(directory):
    """The steps of the checkpoints kept in `directory` (TF writes several files per checkpoint)."""
    return sorted({int(name.split("-")[1].split(".")[0]) for name in os.listdir(directory)
                   if name.startswith("model.ckpt-")})
