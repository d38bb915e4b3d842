"""Package data: example projects (``examples/*.json``), icons and the Linux desktop entry.

Read them with ``importlib.resources.files("netbuilder.resources")``, never by a path relative to
a source file: in an installed wheel this folder lives inside site-packages.
"""
