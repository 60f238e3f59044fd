"""The Store interface on Redis, shared by server replicas and workers.

Keys (prefix `graphexec:`):
  blob:{kind}:{key}            immutable bytes: graph segments ("segment") and plans ("plan"); expire
                               after BLOB_TTL_S unread (a client re-sends a graph the server lost)
  session:{handle}             session record (JSON); expires after SESSION_TTL_S unused, so sessions
                               of clients that died without closing do not pile up
  heads:{container}            hash: variable name -> its serialized Tensor up to the content bytes
  var:{container}:{name}       the variable's content bytes (the head and these make the Tensor)
  vars:{container}             hash: variable name -> serialized Tensor, as earlier versions wrote
                               them: read (heads: wins), deleted by reset, never written
  version:{container}          integer bumped by every commit
  applied:{container}:{id}     result of an applied request id, with a TTL; set by the same script
                               run as the variable updates it acknowledges
  stage:{container}:{token}:{i}  content staged for a commit, pipelined just before the script that
                               renames it into place (or drops it); expires unused after STAGED_TTL_MS
  lock:{container}             update lock, taken after a commit aborted: "{request id}:{random}" with
                               a short TTL that a background thread renews while the lock is held (a
                               dead holder's lock expires quickly); commits of other runs abort while
                               it is held, so the holder's goes through
  worker:{id}                  JSON {id, address, devices, load}, with a heartbeat TTL
  workers                      set of worker ids (pruned as their keys expire)
  poison                       sorted set: signatures of runs that killed their worker, scored by
                               when their cool-down ends (graphexec.server.poison)
  var_bytes:{container}        bytes of the container's variables, and
  tenant_var_bytes:{tenant}    of all the tenant's containers (--max-variable-bytes-per-tenant); changed
                               in the commit's MULTI/EXEC, only by commits that grow or shrink them
  tenant_graphs:{tenant}       sorted set: "CHAIN:BYTES" of the graph segments the tenant uploaded, scored
                               by when they stop counting (BLOB_TTL_S after upload), and
  tenant_graph_bytes:{tenant}  their total (--max-graph-bytes-per-tenant)
  tenant_sessions:{tenant}     sorted set: the tenant's session handles, scored by when they stop
                               counting (SESSION_TTL_S after creation), for --max-sessions-per-tenant

Socket timeouts are short and there are no hidden retries, so when Redis is down a run fails fast
with UNAVAILABLE naming it; the connection pool reconnects once it is back.
"""
from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
import urllib.parse

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from graphexec import errors
from graphexec.rpc import codec, tensors
from graphexec.runtime.store import APPLIED_TTL_S, DEFAULT_LOCK_TIMEOUT_S, AlreadyApplied, Store, over_quota, tenant_of
from graphexec.server.resp import Lanes
from graphexec.server.staging import Staging
from graphexec.server.telemetry import Metrics

PREFIX = "graphexec:"
SOCKET_TIMEOUT_S = 1.5
LOCK_POLL_S = (0.001, 0.02)  # first and longest wait between tries for a held lock
LOCK_TTL_MS = 3000
COMMIT_WAIT_MS = (SOCKET_TIMEOUT_S - 0.5) * 1000  # a commit applies only this soon after it was sent
CLOCK_CHECK_S = 60.0  # how often the offset between our clock and Redis's is measured
STAGED_TTL_MS = 60_000  # values staged for a commit that never came (its writer died) expire
SESSION_TTL_S = 7 * 24 * 3600  # idle time after which a session record is dropped (variables stay)
BLOB_TTL_S = 30 * 24 * 3600  # idle time after which a graph segment or plan is dropped (rebuilt on demand)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_CLAIM = ("redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1]) "
          "if redis.call('zcard', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end "
          "redis.call('zadd', KEYS[1], ARGV[2], ARGV[4]) redis.call('expire', KEYS[1], ARGV[5]) return 1")
# KEYS: version, applied:{request id}, heads, lock, the container's variable bytes, the tenant's, then
# (staged content, variable key) per value; ARGV: base version, result, its TTL, the lock owner prefix
# (the request id and ":"), whether there is a request id, the time (Redis's clock, ms) after which the
# sender no longer waits, the bytes the commit adds, the tenant's quota (-1: none), then (name, head)
# per value. A request id already applied is answered with its stored result; a version that moved, a
# commit that arrives too late (Redis was paused), a lock held by another run or a commit that would
# take the tenant over its quota aborts; else the staged
# contents are renamed into place (no copy), the heads set, the version bumped and the result recorded:
# one atomic step. Staged keys are dropped when it aborts. (Under Redis's maxmemory only a script's
# first write can be refused: HSET comes first, so a refused commit writes nothing.)
_COMMIT = """
local function drop() for i = 7, #KEYS, 2 do redis.call('del', KEYS[i]) end end
if ARGV[5] == '1' then
  local stored = redis.call('get', KEYS[2])
  if stored then drop() return {'applied', stored} end
end
local version = redis.call('get', KEYS[1]) or '0'
if version ~= ARGV[1] then drop() return {'version ' .. ARGV[1] .. ' -> ' .. version, ''} end
local now = redis.call('time')
if now[1] * 1000 + math.floor(now[2] / 1000) > tonumber(ARGV[6]) then drop() return {'late', ''} end
local holder = redis.call('get', KEYS[4])
if holder and string.sub(holder, 1, #ARGV[4]) ~= ARGV[4] then drop() return {'another run holds the lock', ''} end
local added = tonumber(ARGV[7])
if added > 0 and tonumber(ARGV[8]) >= 0 then  -- only commits that grow the variables: not training steps
  local used = tonumber(redis.call('get', KEYS[6]) or '0')
  if used + added > tonumber(ARGV[8]) then drop() return {'quota', tostring(used)} end
end
for i = 7, #KEYS, 2 do
  if redis.call('exists', KEYS[i]) == 0 then drop() return {'a staged value expired', ''} end
end
for i = 7, #KEYS, 2 do redis.call('hset', KEYS[3], ARGV[i + 2], ARGV[i + 3]) end  -- first: OOM stops it here
for i = 7, #KEYS, 2 do
  redis.call('rename', KEYS[i], KEYS[i + 1])
  redis.call('persist', KEYS[i + 1])  -- the staged key's expiry came along
end
if added ~= 0 then redis.call('incrby', KEYS[5], added) redis.call('incrby', KEYS[6], added) end
local new = redis.call('incr', KEYS[1])
if ARGV[5] == '1' then redis.call('set', KEYS[2], ARGV[2], 'EX', ARGV[3]) end
return {'ok', tostring(new)}
"""
# KEYS: version, heads, the earlier versions' vars hash; ARGV: the prefix of variable keys. Returns
# version, heads (name, head, ...), their contents in that order, and the earlier hash (name, value, ...).
_READ = """
local heads = redis.call('hgetall', KEYS[2])
local contents = {}
for i = 1, #heads, 2 do contents[#contents + 1] = redis.call('get', ARGV[1] .. heads[i]) or '' end
return {redis.call('get', KEYS[1]) or '0', heads, contents, redis.call('hgetall', KEYS[3])}
"""
# KEYS: version, heads, the earlier versions' vars hash, the container's variable bytes, the tenant's;
# ARGV: the prefix of variable keys. The freed bytes leave the tenant's count.
_RESET = """
for _, name in ipairs(redis.call('hkeys', KEYS[2])) do redis.call('del', ARGV[1] .. name) end
local freed = tonumber(redis.call('get', KEYS[4]) or '0')
redis.call('del', KEYS[2], KEYS[3], KEYS[4])
if freed ~= 0 then redis.call('decrby', KEYS[5], freed) end
return redis.call('incr', KEYS[1])
"""
# KEYS: tenant_graphs, tenant_graph_bytes; ARGV: now, expiry, member, bytes, quota, ttl.
# Returns {counted (0: refused, 1: newly, 2: already), bytes counted before}.
_CLAIM_GRAPH = ("local used = tonumber(redis.call('get', KEYS[2]) or '0') "
                "for _, m in ipairs(redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1])) do "
                "used = used - tonumber(string.match(m, ':(%d+)$')) end "
                "redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1]) "
                "local counted = 1 "
                "if redis.call('zscore', KEYS[1], ARGV[3]) then counted = 2 "
                "elseif used + tonumber(ARGV[4]) > tonumber(ARGV[5]) then counted = 0 end "
                "if counted > 0 then redis.call('zadd', KEYS[1], ARGV[2], ARGV[3]) "
                "redis.call('expire', KEYS[1], ARGV[6]) redis.call('expire', KEYS[2], ARGV[6]) end "
                "redis.call('set', KEYS[2], used + (counted == 1 and tonumber(ARGV[4]) or 0)) "
                "return {counted, used}")
_RELEASE_GRAPH = ("if redis.call('zrem', KEYS[1], ARGV[1]) == 1 then redis.call('decrby', KEYS[2], ARGV[2]) end")
_RENEW = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
          "else return 0 end")


def _without_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _decoded(info: bytes):
    """A worker record, or None for one that is not JSON (anyone who can write to Redis could put it)."""
    try:
        return json.loads(info)
    except ValueError:
        return None


def _unavailable(url: str, exc: Exception) -> errors.UnavailableError:
    return errors.UnavailableError(None, None, f"Redis at {url} is unavailable: {type(exc).__name__}: {exc}")


def _guarded(method):
    """Redis connection failures become UNAVAILABLE naming Redis; each call is timed (and a failure
    counted) under the operation's name."""
    operation = method.__name__.lstrip("_")

    def wrapper(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        except redis.AuthenticationError as exc:  # a wrong or missing password: retrying will not help
            raise errors.FailedPreconditionError(None, None, f"Redis at {self.url} refused us: {exc}") from None
        except redis.exceptions.OutOfMemoryError as exc:  # maxmemory reached: writes refused until space frees
            raise errors.ResourceExhaustedError(None, None, f"Redis at {self.url} is out of memory (its maxmemory): "
                                                            f"{exc}") from None
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self.metrics.redis_errors.labels(operation).inc()
            raise _unavailable(self.url, exc) from None
        finally:
            self.metrics.redis_timer(operation)(time.perf_counter() - started)

    wrapper.__wrapped__ = method
    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


class RedisStore(Store):
    """`url`: redis://[[USER]:PASSWORD@]HOST:PORT/DB, or rediss:// for TLS (redis-py reads it); a
    `password` given apart wins over the URL's. Messages name the URL without its password."""

    shared = True

    def __init__(self, url: str, password: str | None = None, *, metrics: Metrics | None = None):
        self.url = _without_password(url)
        self.description = f"Redis at {self.url}"
        extra = {"password": password} if password else {}
        self.metrics = metrics or Metrics()
        self.client = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S,
                                           socket_connect_timeout=SOCKET_TIMEOUT_S,
                                           retry=Retry(NoBackoff(), 0), health_check_interval=0, **extra)
        self._release = self.client.register_script(_RELEASE)
        self._renew = self.client.register_script(_RENEW)
        self._claim = self.client.register_script(_CLAIM)
        self._read = self.client.register_script(_READ)
        self._reset = self.client.register_script(_RESET)
        self._claim_graph = self.client.register_script(_CLAIM_GRAPH)
        self._release_graph = self.client.register_script(_RELEASE_GRAPH)
        self._commit_sha = self.client.register_script(_COMMIT).sha  # loaded at the first NOSCRIPT
        self._lanes = Lanes(self.client.connection_pool)  # for the commit's hand-packed pipeline (server.resp)
        self._clock_offset, self._clock_checked = 0.0, -CLOCK_CHECK_S
        self._held: dict[str, str] = {}  # lock key -> token, renewed until released
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew_held_locks, name="graphexec-lock-renewal", daemon=True)
        self._renewer.start()

    @_guarded
    def ping(self):
        self.client.ping()

    # -- blobs and sessions ---------------------------------------------------------------------
    @_guarded
    def get_blob(self, kind, key):
        return self.client.getex(f"{PREFIX}blob:{kind}:{key}", ex=BLOB_TTL_S)  # reading keeps it alive

    @_guarded
    def get_blob_head(self, kind, key, nbytes):
        # One round trip; reading keeps the blob alive, as get_blob does. Blobs are never empty, and
        # GETRANGE answers a missing key with no bytes.
        pipe = self.client.pipeline(transaction=False)
        pipe.getrange(f"{PREFIX}blob:{kind}:{key}", 0, nbytes - 1)
        pipe.expire(f"{PREFIX}blob:{kind}:{key}", BLOB_TTL_S)
        head, _ = pipe.execute()
        return head or None

    @_guarded
    def put_blob(self, kind, key, data):
        self.client.set(f"{PREFIX}blob:{kind}:{key}", data, ex=BLOB_TTL_S)

    @_guarded
    def get_session(self, handle):
        return self.client.getex(f"{PREFIX}session:{handle}", ex=SESSION_TTL_S)

    @_guarded
    def put_session(self, handle, record):
        self.client.set(f"{PREFIX}session:{handle}", record, ex=SESSION_TTL_S)

    @_guarded
    def delete_session(self, handle):
        self.client.delete(f"{PREFIX}session:{handle}")

    @_guarded
    def claim_session(self, tenant, handle, limit):
        now = time.time()
        return bool(self._claim(keys=[f"{PREFIX}tenant_sessions:{tenant}"],
                                args=[now, now + SESSION_TTL_S, limit, handle, SESSION_TTL_S]))

    @_guarded
    def release_session(self, tenant, handle):
        self.client.zrem(f"{PREFIX}tenant_sessions:{tenant}", handle)

    # -- variables ------------------------------------------------------------------------------
    @_guarded
    def begin_run(self, container, request_id):
        pipe = self.client.pipeline(transaction=False)
        pipe.get(f"{PREFIX}version:{container}")
        if request_id:
            pipe.get(f"{PREFIX}applied:{container}:{request_id}")
        replies = pipe.execute()
        return int(replies[0] or 0), (replies[1] if request_id else None)

    @_guarded
    def read_variables(self, container):
        version, heads, contents, earlier = self._read(keys=self._variable_keys(container),
                                                       args=[f"{PREFIX}var:{container}:"])
        values = {earlier[i].decode(): tensors.tensor_from_bytes(earlier[i + 1]) for i in range(0, len(earlier), 2)}
        for i, content in enumerate(contents):
            values[heads[2 * i].decode()] = tensors.tensor_from_bytes(heads[2 * i + 1] + content)
        return int(version), values

    @staticmethod
    def _variable_keys(container):
        return [f"{PREFIX}version:{container}", f"{PREFIX}heads:{container}", f"{PREFIX}vars:{container}"]

    def staging(self, container):
        return Staging(self._lanes, f"{PREFIX}stage:{container}:", STAGED_TTL_MS)

    @_guarded
    def commit(self, container, base_version, updates, request_id, result, added_bytes=0, staging=None):
        # One round trip: each value is staged under a key of its own (its content sent straight from
        # the array), then the _COMMIT script checks and applies them atomically. Values staged early
        # (server.staging) are on the way already, on the connection that carries the rest.
        early = staging.finish() if staging is not None else None
        connection, owed = early or (None, 0)
        ahead = dict(staging.staged) if early else {}
        stage = f"{PREFIX}stage:{container}:{secrets.token_hex(8)}:"
        keys = [f"{PREFIX}version:{container}", f"{PREFIX}applied:{container}:{request_id}",
                f"{PREFIX}heads:{container}", f"{PREFIX}lock:{container}", f"{PREFIX}var_bytes:{container}",
                f"{PREFIX}tenant_var_bytes:{tenant_of(container)}"]
        # A commit that reaches Redis after we stopped waiting (Redis was paused) must not apply: the
        # caller reports it failed.
        args = [base_version, result, APPLIED_TTL_S, f"{request_id}:", 1 if request_id else 0,
                int(self._redis_clock_ms() + COMMIT_WAIT_MS), added_bytes,
                -1 if self.variable_quota is None else self.variable_quota]
        commands = []
        for index, (name, value) in enumerate(updates.items()):
            key, head, sent = ahead.pop(name, (None, None, None))
            if sent is not value:
                head, content = codec.tensor_parts(value)
                key = f"{stage}{index}"
                commands.append((b"SET", key, content, b"PX", STAGED_TTL_MS))
            keys += [key, f"{PREFIX}var:{container}:{name}"]
            args += [name, head]
        # Largest first: Redis reads a large value straight into its own buffer when the value starts its
        # read, and moves what it read so far when smaller commands came before it (W3's commit, 800 KB
        # and three small values: ~20 us less of Redis's CPU and of the round trip).
        commands.sort(key=lambda command: -len(command[2]))
        if ahead:  # staged, but not among the updates after all: not to be left behind
            commands.append((b"DEL", *(key for key, _, _ in ahead.values())))
        commands.append((b"EVALSHA", self._commit_sha, len(keys), *keys, *args))
        try:
            outcome, value = self._lanes.call(commands, connection, owed)[-1]
        except redis.exceptions.NoScriptError:  # Redis restarted since we loaded it (or we never did)
            if len(keys) > 6:
                self.client.delete(*keys[6::2])
            self._commit_sha = self.client.script_load(_COMMIT)
            return self.commit.__wrapped__(self, container, base_version, updates, request_id, result,
                                           added_bytes)
        if outcome == b"ok":
            return int(value)
        if outcome == b"applied":
            raise AlreadyApplied(value)
        if outcome == b"quota":
            raise over_quota("stored variables", tenant_of(container), int(value), added_bytes, self.variable_quota,
                             "--max-variable-bytes-per-tenant")
        if outcome == b"late":
            self._clock_checked = -CLOCK_CHECK_S  # in case our clock jumped: measure it again
            raise _unavailable(self.url, TimeoutError("the commit reached Redis after its wait ended"))
        raise errors.AbortedError(None, None, f"variables of container '{container}' changed during the run "
                                              f"({outcome.decode()}); retry")

    def _redis_clock_ms(self) -> float:
        """Redis's clock now, in ms, from ours and an offset measured now and then."""
        now = time.monotonic()
        if now - self._clock_checked > CLOCK_CHECK_S:
            sent = time.time()
            seconds, micros = self.client.time()
            self._clock_offset = seconds + micros / 1e6 - (sent + time.time()) / 2
            self._clock_checked = now
        return (time.time() + self._clock_offset) * 1000

    @_guarded
    def reset(self, container):
        self._reset(keys=[*self._variable_keys(container), f"{PREFIX}var_bytes:{container}",
                          f"{PREFIX}tenant_var_bytes:{tenant_of(container)}"], args=[f"{PREFIX}var:{container}:"])

    @_guarded
    def claim_graph_bytes(self, tenant, chain, nbytes, quota):
        now = time.time()
        keys = [f"{PREFIX}tenant_graphs:{tenant}", f"{PREFIX}tenant_graph_bytes:{tenant}"]
        counted, used = self._claim_graph(keys=keys, args=[now, now + BLOB_TTL_S, f"{chain}:{nbytes}", nbytes, quota,
                                                           BLOB_TTL_S])
        return int(counted), int(used)

    @_guarded
    def release_graph_bytes(self, tenant, chain, nbytes):
        self._release_graph(keys=[f"{PREFIX}tenant_graphs:{tenant}", f"{PREFIX}tenant_graph_bytes:{tenant}"],
                            args=[f"{chain}:{nbytes}", nbytes])

    @contextlib.contextmanager
    def lock(self, container, timeout_s=DEFAULT_LOCK_TIMEOUT_S, owner=0):
        key, token = f"{PREFIX}lock:{container}", f"{owner}:{secrets.token_hex(8)}"  # commits check the owner
        self._acquire(key, token, time.monotonic() + max(timeout_s, 0), container)
        self._held[key] = token
        try:
            yield
        finally:
            self._held.pop(key, None)
            self._unlock(key, token)

    @_guarded
    def _acquire(self, key, token, give_up_at, container):
        wait = LOCK_POLL_S[0]
        while not self.client.set(key, token, nx=True, px=LOCK_TTL_MS):
            if time.monotonic() > give_up_at:
                raise errors.DeadlineExceededError(None, None, f"timed out waiting for the update lock of "
                                                               f"container '{container}'")
            time.sleep(wait)
            wait = min(wait * 2, LOCK_POLL_S[1])

    @_guarded
    def _unlock(self, key, token):
        self._release(keys=[key], args=[token])

    def _renew_held_locks(self):
        while not self._stop.wait(LOCK_TTL_MS / 3000):
            for key, token in list(self._held.items()):
                try:
                    self._renew(keys=[key], args=[token, LOCK_TTL_MS])
                except (redis.ConnectionError, redis.TimeoutError, OSError):
                    pass  # Redis is away: the run holding the lock fails on its own next call

    # -- runs that killed their worker ------------------------------------------------------------
    @_guarded
    def add_poison(self, member, ttl_s, keep):
        now, key = time.time(), f"{PREFIX}poison"
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(key, {member: now + ttl_s})
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zremrangebyrank(key, 0, -keep - 1)
        pipe.expire(key, int(ttl_s) + 1)
        pipe.execute()

    @_guarded
    def poison_list(self):
        members = self.client.zrangebyscore(f"{PREFIX}poison", time.time(), "+inf", withscores=True)
        return [(member.decode(errors="replace"), until) for member, until in members]

    # -- workers --------------------------------------------------------------------------------
    @_guarded
    def register_worker(self, worker_id, info, ttl_s):
        pipe = self.client.pipeline(transaction=False)
        pipe.set(f"{PREFIX}worker:{worker_id}", json.dumps(info), px=int(ttl_s * 1000))
        pipe.sadd(f"{PREFIX}workers", worker_id)
        pipe.execute()

    @_guarded
    def unregister_worker(self, worker_id):
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(f"{PREFIX}worker:{worker_id}")
        pipe.srem(f"{PREFIX}workers", worker_id)
        pipe.execute()

    @_guarded
    def live_workers(self):
        ids = sorted(member.decode() for member in self.client.smembers(f"{PREFIX}workers"))
        if not ids:
            return []
        infos = self.client.mget([f"{PREFIX}worker:{i}" for i in ids])
        expired = [i for i, info in zip(ids, infos) if info is None]
        if expired:
            self.client.srem(f"{PREFIX}workers", *expired)
        return [_decoded(info) for info in infos if info is not None]

    def close(self):
        self._stop.set()
        self._lanes.close()
        self.client.close()
