"""Process settings (graphexec/runtime/tuning.py, graphexec/runtime/blas.py and intra_op.py), each checked in a fresh interpreter."""
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
SESSION = ("import json, threadpoolctl\nimport graphexec as tf\nfrom graphexec.runtime import intra_op\n"
           "tf.Session(config=tf.ConfigProto({setting}))\n"
           "print(json.dumps([[i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'], "
           "intra_op.threads()]))")


def test_blas_threads_are_limited_to_the_setting():
    assert _run(BLAS.format(threads=1), OPENBLAS_NUM_THREADS="2") == [1]
    assert set(_run(BLAS.format(threads=2), OPENBLAS_NUM_THREADS="1")) == {2}


def test_zero_leaves_the_librarys_own_thread_count():
    assert set(_run(BLAS.format(threads=0), OPENBLAS_NUM_THREADS="2")) == {2}


def test_an_in_process_session_splits_kernels_over_intra_op_parallelism_threads_as_tensorflow_does():
    """The session's own threads split large kernels, each part a one-thread BLAS call."""
    # Every BLAS library loaded (numba's import loads SciPy's, where it is installed) runs one thread a call.
    blas_threads, intra_op_threads = _run(SESSION.format(setting="intra_op_parallelism_threads=3"),
                                          OPENBLAS_NUM_THREADS="2")
    assert (set(blas_threads), intra_op_threads) == ({1}, 3)
    blas_threads, intra_op_threads = _run(SESSION.format(setting=""), OPENBLAS_NUM_THREADS="2")
    assert (set(blas_threads), intra_op_threads) == ({1}, len(os.sched_getaffinity(0)))


SERVER = ("import json, sys\nfrom graphexec import cli\nfrom graphexec.runtime import blas, intra_op\n"
          "cli._tune(cli._parser().parse_args(sys.argv[1:]))\n"
          "print(json.dumps([blas.single_threaded(), intra_op.threads()]))")


def test_a_server_takes_its_intra_op_threads_and_splits_only_over_one_thread_blas():
    def run(*argv):
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GRAPHEXEC_"))}
        out = subprocess.run([sys.executable, "-c", SERVER, *argv], capture_output=True, text=True, check=True,
                             cwd=ROOT, env={**clean, "PYTHONPATH": ROOT, "OPENBLAS_NUM_THREADS": "2"})
        return json.loads(out.stdout)

    assert run("serve") == [True, len(os.sched_getaffinity(0))]
    assert run("serve", "--intra-op-threads", "5") == [True, 5]
    assert run("serve", "--blas-threads", "0") == [False, len(os.sched_getaffinity(0))]


KEEP = ("import json\nfrom graphexec.runtime import tuning\nprint(json.dumps(tuning.keep_freed_memory()))")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_kept_unless_the_environment_says_otherwise():
    assert _run(KEEP) is True
    assert _run(KEEP, MALLOC_TRIM_THRESHOLD_="131072") is False


FAULTS = ("import json, resource, sys\nfrom graphexec.runtime import tuning\n"
          "kept = tuning.keep_freed_memory(one_arena=True) if sys.argv[1] == 'keep' else None\n"
          "def faults():\n    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
          "buffer = bytearray(64 << 20)\ndel buffer\nbefore = faults()\nbuffer = bytearray(64 << 20)\n"
          "print(json.dumps([kept, faults() - before]))")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_large_buffer_reuses_freed_memory_instead_of_faulting_in_new_pages():
    """What a remote session's process and servers gain: W2's 64 MiB answer, received twice."""
    def run(mode):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True,
                             cwd=ROOT, env={**clean, "PYTHONPATH": ROOT})
        return json.loads(out.stdout)

    kept, faults = run("keep")
    assert kept is True and faults < 1000
    # glibc maps 64 MiB anew: one fault per page, 4 KiB, or 16 KiB where the kernel maps anonymous memory
    # in 16 KiB folios (multi-size THP, /sys/kernel/mm/transparent_hugepage/hugepages-16kB: 4,196 faults)
    assert run("default")[1] > 3000


def test_openblas_buffers_are_written_by_as_many_products_at_once_as_asked(monkeypatch):
    """OpenBLAS gives a product the first buffer no running product holds, so buffer k is written only
    by a product that runs while k others do: warm_buffers(n) must run its n products at once."""
    import threading
    import types

    from graphexec.runtime import blas

    running, most, lock = [0], [0], threading.Lock()

    def matmul(a, b):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        threading.Event().wait(0.05)  # a real 384 x 384 product takes ~5-10 ms on one core
        with lock:
            running[0] -= 1

    fake_np = types.SimpleNamespace(ones=lambda shape, dtype: None, float32=None, matmul=matmul)
    monkeypatch.setattr(blas, "np", fake_np)
    monkeypatch.setattr(blas, "_warmed", 0)
    monkeypatch.setattr(blas, "_openblas", lambda: True)
    blas.warm_buffers(3)
    assert most[0] == 3
    most[0] = 0
    blas.warm_buffers(2)  # fewer than already written: nothing to do
    assert most[0] == 0
    blas.warm_buffers(4)
    assert most[0] == 4


def test_servers_and_sessions_write_openblas_buffers_at_startup():
    code = ("import json\nimport graphexec as tf\nfrom graphexec.runtime import blas, intra_op\n"
            "tf.Session()\nprint(json.dumps([blas._warmed, intra_op.threads(), blas._openblas()]))")
    warmed, threads, openblas = _run(code)
    assert threads >= 1
    assert warmed == (threads if openblas else 0)  # other BLAS libraries are left alone


AMD_ZEN3 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n"
            "flags\t\t: fpu sse2 avx2 erms fsrm\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\n")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's tunables")
@pytest.mark.parametrize("cpuinfo, environ, expected", [
    (AMD_ZEN3, {}, {"GLIBC_TUNABLES": "glibc.cpu.x86_rep_movsb_threshold=4611686018427387904"}),
    (AMD_ZEN3, {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"},
     {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:glibc.cpu.x86_rep_movsb_threshold=4611686018427387904"}),
    (AMD_ZEN3, {"GLIBC_TUNABLES": "glibc.cpu.x86_rep_movsb_threshold=4096"}, {}),  # the user's own wins
    (AMD_ZEN3.replace(" fsrm", ""), {}, {}),  # Zen 2: memcpy takes no REP MOVSB for these sizes there
    (AMD_ZEN3.replace("AuthenticAMD", "GenuineIntel"), {}, {}),
])
def test_servers_keep_glibcs_memcpy_off_rep_movsb_on_amd_processors_with_fsrm(tmp_path, cpuinfo, environ, expected):
    import platform

    from graphexec.runtime import tuning
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    info = tmp_path / "cpuinfo"
    info.write_text(cpuinfo)
    assert tuning.copy_tunables(environ, str(info)) == expected
    assert tuning.copy_tunables(environ, str(tmp_path / "missing")) == {}


def test_a_ready_server_leaves_its_startup_objects_out_of_full_collections():
    """The step that comes last before a server says it serves (cli._ready_to_serve) freezes what exists:
    a full collection then walks only the objects made since, not the ~100K of the server's imports."""
    code = ("import argparse, gc, json\nfrom graphexec import cli\n"
            "before = len(gc.get_objects())\n"
            "cli._ready_to_serve(argparse.Namespace(intra_op_spin_us=0))\n"
            "made_since = [object() for _ in range(10)]\n"
            "print(json.dumps([before, gc.get_freeze_count(), len(gc.get_objects())]))")
    before, frozen, walked = _run(code)
    assert frozen >= before > 10_000
    assert walked < 1_000


def test_a_server_that_loads_torch_later_leaves_its_objects_out_of_full_collections():
    """torch loads at a server's first convolution, ~100K objects after the startup freeze: they are frozen
    too (tuning.freeze_loaded_library); an in-process session freezes nothing."""
    pytest.importorskip("torch")
    code = ("import gc, json\nfrom graphexec.runtime import conv_library, tuning\n{freeze}"
            "conv_library.choose('torch')\nconv_library._load()\n"
            "print(json.dumps([gc.get_freeze_count(), len(gc.get_objects())]))")
    frozen, walked = _run(code.format(freeze="tuning.freeze_startup_objects()\n"))
    assert frozen > 50_000 and walked < 1_000
    frozen, walked = _run(code.format(freeze=""))
    assert frozen == 0 and walked > 50_000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's tunables")
@pytest.mark.parametrize("environ, expected", [
    ({}, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=1"}),
    ({"GLIBC_TUNABLES": "glibc.cpu.x86_rep_movsb_threshold=4096"},
     {"GLIBC_TUNABLES": "glibc.cpu.x86_rep_movsb_threshold=4096:glibc.malloc.arena_max=1"}),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}, {}),  # the user's own wins
    ({"MALLOC_ARENA_MAX": "2"}, {}),  # as any MALLOC_* setting does
])
def test_servers_start_with_one_malloc_arena(environ, expected):
    import platform

    from graphexec.runtime import tuning
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert tuning.arena_tunables(environ) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's tunables")
def test_a_server_on_amd_with_fsrm_gets_both_glibc_settings(tmp_path):
    import platform

    from graphexec.runtime import tuning
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    info = tmp_path / "cpuinfo"
    info.write_text(AMD_ZEN3)
    assert tuning.server_tunables({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}, str(info)) == {
        "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:glibc.cpu.x86_rep_movsb_threshold=4611686018427387904"
                          ":glibc.malloc.arena_max=1"}
    info.write_text(AMD_ZEN3.replace("AuthenticAMD", "GenuineIntel"))
    assert tuning.server_tunables({}, str(info)) == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=1"}
