"""The Open Inference Protocol (KServe v2, Triton's REST API): `/v2` metadata, health and
`POST /v2/models/<name>/infer` with JSON or binary tensors, over the same inference core,
batcher, keys and metrics as the native API. Models are views of the one autoencoder:
`<name>` reconstructs, `-encoder`, `-decoder` and `-interpolator` run one half or a path."""
