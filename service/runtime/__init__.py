"""The model runtime: loading the self-describing TorchScript file and checking it (`model`),
the scripted methods that run a whole batch with its pre- and post-processing (`serving`), the
CPU's matrix-product layers (`layers`), hot swap (`reload`), and the inference thread's
priority and memory habits (`priority`, `heap`). Nothing here knows about HTTP."""
