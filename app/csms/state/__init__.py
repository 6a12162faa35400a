"""The central system's state, each part behind one small interface with an in-memory
implementation: the station registry, per-station state, transaction ids, the event bus and
this process's live connections. `csms.cluster` provides Redis implementations."""
