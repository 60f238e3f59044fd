"""The graphexec server: gRPC servicer, sessions, graph library, plan cache, worker pool and Redis store.

Modules, from the wire inwards: servicer (gRPC glue) -> service (what a run does) -> sessions,
graphs, plans -> pool (which worker) -> the engine in graphexec.runtime (worker, placement, store);
worker_service serves a WorkerCore as the `graphexec worker` process; redis_store keeps the store's
state in Redis.
"""
