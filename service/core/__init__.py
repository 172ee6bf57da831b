"""The inference core: the verbs as plain async calls on arrays and PNG files, with no HTTP in
them (`inference`), and the micro-batcher that gathers concurrent calls into one model call on
one thread (`batching`). Every front calls through here, so every front gets the same batches,
deadlines and answers."""
