"""The graphexec server: gRPC servicer, session store, placement, plan cache, stores and workers.

Modules, from the wire inwards: servicer (gRPC glue) -> service (what a run does) -> sessions,
graphs, plans, placement -> pool (which worker) -> worker (runs plans) / worker_service (the
`graphexec worker` process); store (the interface, in memory) and redis_store (in Redis).
"""
