"""The service's own API: `POST /encode`, `/decode`, `/reconstruct` and `/interpolate` over PNG
files (raw, multipart, base64 JSON) and embeddings, their OpenAPI page, the probes, the admin
routes and the page to draw on. Errors are RFC 9457 problem+json."""
