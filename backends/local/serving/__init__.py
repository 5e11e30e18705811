"""The local serving runtime: the weighted router, the model server, their control key and HTTP base."""
