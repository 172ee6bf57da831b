"""The HTTP side of the service, shared by every protocol it speaks. A front turns a request into
a call on the inference core and its answer (or its exception) back into a response; what all
fronts need lives here once: request ids, body limits and deadlines, API keys, CORS, metrics
labels, the one place exceptions become HTTP errors (`problems`), the verbs' fast path
(`dispatch`), and draining on shutdown. `native` is the service's own API, `oip` the Open
Inference Protocol; neither knows the other."""
