"""Jupyter display: mime bundles, the show() views and the %%gradtrace cell magic."""
