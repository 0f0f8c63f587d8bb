"""Example applications built on flask_maestrano (``python -m examples.demo``)."""
