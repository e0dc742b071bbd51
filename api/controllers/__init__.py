"""One controller per resource; each handler takes its shared parameters parsed by dependencies (`api.params`),
calls one `k2.query` function, and renders. `api.contract.data_route` documents what every `/v1` route can answer."""
