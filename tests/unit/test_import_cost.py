"""What `import graphexec` loads, checked in a fresh interpreter: not what only some uses need, which loads
on first use: tensorboardX (and the boto3 it brings where installed) with tf.summary.FileWriter, absl
with tf.app/tf.flags, tqdm with the first progress bar shown, grpc with the first remote session, crc32c
with the first TFRecord read or written. And our TensorBoard messages keep
TensorFlow's field numbers and wire types (compared with TensorBoard's copies of TensorFlow's protos)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from graphexec.rpc import summary as ours

ROOT = Path(__file__).resolve().parents[2]
DEFERRED = ("tensorboardX", "boto3", "botocore", "absl", "tqdm", "grpc", "crc32c")


def modules_after(code: str) -> list[str]:
    """Top-level names of the modules loaded after running `code` in a fresh interpreter of this checkout."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return json.loads(done.stdout.splitlines()[-1])


def test_import_graphexec_loads_no_event_file_writer():
    loaded = modules_after("import graphexec as tf; tf.summary.scalar; tf.train.SummarySaverHook")
    assert "graphexec" in loaded
    assert [name for name in DEFERRED if name in loaded] == []


def test_in_process_sessions_load_no_grpc_and_remote_ones_do():
    in_process = "import graphexec as tf\nwith tf.Session() as s: assert s.run(tf.constant(2) + 1) == 3\n"
    assert "grpc" not in modules_after(in_process)
    remote = in_process + "import graphexec.client\nassert graphexec.client.RemoteSession.__name__ == 'RemoteSession'"
    assert "grpc" in modules_after(remote)


def test_tf_app_and_tf_flags_load_absl_on_first_use():
    assert "absl" in modules_after("import graphexec as tf; tf.flags.DEFINE_string('who', 'me', 'who')\n"
                                   "assert tf.app.flags is tf.flags and 'flags' in dir(tf)")


def test_progress_bars_load_tqdm_only_when_one_is_shown():
    with_bars = "import os; os.environ['GRAPHEXEC_PROGRESS'] = '{}'\nimport graphexec as tf\n" \
                "s = tf.Session(); list(s.stream(tf.constant(1), [{{}}] * 3)); s.close()"
    assert "tqdm" not in modules_after(with_bars.format("0"))
    assert "tqdm" in modules_after(with_bars.format("1"))


def test_summaries_run_without_it_and_the_file_writer_loads_it_on_first_use():
    run = ("import graphexec as tf\n"
           "s = tf.summary.merge_all()\n"
           "x = tf.summary.scalar('x', tf.constant(1.5))\n"
           "with tf.Session() as sess: sess.run(tf.summary.merge_all())\n")
    assert "tensorboardX" not in modules_after(run)
    assert "tensorboardX" in modules_after(run + "tf.summary.FileWriter\n")


try:  # TensorBoard's own copies of TensorFlow's messages (installed with TensorFlow)
    from tensorboard.compat.proto import event_pb2 as reference
    PACKAGE, NEWER_THAN_REFERENCE = "tensorboard", set()
except ImportError:  # tensorboardX's copies (a dependency), whose SummaryMetadata predates field 4
    from tensorboardX.proto import event_pb2 as reference
    PACKAGE, NEWER_THAN_REFERENCE = "tensorboardX", {"graphexec.v1.SummaryMetadata.data_class"}
POOL = reference.DESCRIPTOR.pool
SAME_WIRE_TYPE = {FieldDescriptor.TYPE_ENUM: FieldDescriptor.TYPE_INT32}  # both varints on the wire


def _pairs(mine, theirs):
    yield mine, theirs
    for nested in mine.nested_types:
        yield from _pairs(nested, theirs.nested_types_by_name[nested.name])


@pytest.mark.parametrize(("message", "tensorflow_name"), [
    (ours.Summary, "Summary"), (ours.SummaryMetadata, "SummaryMetadata"), (ours.HistogramProto, "HistogramProto"),
    (ours.SummaryTensor, "TensorProto"), (ours.SummaryTensorShape, "TensorShapeProto"), (ours.Event, "Event"),
    (ours.SessionLog, "SessionLog"), (ours.TaggedRunMetadata, "TaggedRunMetadata"),
])
def test_every_field_has_tensorflows_number_and_wire_type(message, tensorflow_name):
    for mine, theirs in _pairs(message.DESCRIPTOR, POOL.FindMessageTypeByName(f"{PACKAGE}.{tensorflow_name}")):
        for field in mine.fields:
            if field.full_name in NEWER_THAN_REFERENCE:
                continue
            other = theirs.fields_by_number[field.number]
            assert other.name == field.name, (mine.full_name, field.number)
            assert SAME_WIRE_TYPE.get(other.type, other.type) == SAME_WIRE_TYPE.get(field.type, field.type), \
                (mine.full_name, field.name)
            assert other.is_repeated == field.is_repeated, (mine.full_name, field.name)
    session_status = POOL.FindEnumTypeByName(f"{PACKAGE}.SessionLog.SessionStatus")
    assert [v.number for v in ours.SessionLog.DESCRIPTOR.enum_types[0].values] == \
           [v.number for v in session_status.values]
