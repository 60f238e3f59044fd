"""Process settings (graphexec/server/tuning.py, graphexec/runtime/blas.py), each checked in a fresh interpreter."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(code: str, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**clean, "PYTHONPATH": ROOT, **env})
    return json.loads(out.stdout)


BLAS_THREADS = "print(json.dumps([i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas']))"
BLAS = "import json, threadpoolctl\nfrom graphexec.runtime import blas\nblas.limit_threads({threads})\n" + BLAS_THREADS
SESSION = ("import json, threadpoolctl\nimport graphexec as tf\n"
           "tf.Session(config=tf.ConfigProto({setting}))\n" + BLAS_THREADS)


def test_blas_threads_are_limited_to_the_setting():
    assert _run(BLAS.format(threads=1), OPENBLAS_NUM_THREADS="2") == [1]
    assert set(_run(BLAS.format(threads=2), OPENBLAS_NUM_THREADS="1")) == {2}


def test_zero_leaves_the_librarys_own_thread_count():
    assert set(_run(BLAS.format(threads=0), OPENBLAS_NUM_THREADS="2")) == {2}


def test_an_in_process_session_takes_intra_op_parallelism_threads_as_tensorflow_does():
    assert _run(SESSION.format(setting="intra_op_parallelism_threads=1"), OPENBLAS_NUM_THREADS="2") == [1]
    assert set(_run(SESSION.format(setting=""), OPENBLAS_NUM_THREADS="2")) == {2}


KEEP = ("import json\nfrom graphexec.server import tuning\nprint(json.dumps(tuning.keep_freed_memory()))")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_kept_unless_the_environment_says_otherwise():
    assert _run(KEEP) is True
    assert _run(KEEP, MALLOC_TRIM_THRESHOLD_="131072") is False
