"""The engine: running a plan into a run folder.

Holds the runner (:mod:`.runner`: the ledger, provenance, events, the tables at the
end), what a worker runs for one task (:mod:`.jobs`), the strategies (:mod:`.strategies`,
with the horizontal strategy's units in :mod:`.horizontal`), the executors behind one
small interface (:mod:`.executor_base`, :mod:`.executors`, the supervised process pool
of :mod:`.process_pool` and :mod:`.worker_guard`), and what a run tells its caller
(:mod:`.events`, :mod:`.report`). It takes a checked plan from :mod:`..plan`, writes
through :mod:`..run_folder` and summarises with :mod:`..results`; planning never
imports it. Nothing is imported here, so that a worker process loads only what it runs.
"""
