"""One controller per resource; each handler parses parameters, calls one `k2.query` function, and renders."""
