"""Plan execution: contexts (numpy/CuPy), the executor, and the engine every session and server uses
(worker: WorkerCore; store: its state; placement: where steps run; metadata: what a run reports)."""
