"""Model formats: how a version's artifact is recognised, loaded and served.

A format is a small class implementing `backends.base.ModelFormat`: `sniff(path)` says from the
file's (or folder's) own bytes whether it is in that format, `load(path, options)` returns a
`LoadedModel` that predicts a batch of rows (P(y=1) for a binary classifier, values for a
regressor), and `serve_argv` names a server when mrc's own model server is not the one to use.
One module per format; console/plugins.py finds them by name (built-in or the `mrc.formats`
entry-point group), so nothing in console/ imports them directly.

Importing this package imports nothing heavy: torch, onnxruntime and mlflow are imported inside
the functions that need them. `_inspect` and `_scores` hold the stdlib / numpy helpers the
formats share.
"""
