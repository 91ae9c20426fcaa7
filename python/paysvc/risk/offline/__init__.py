"""The offline risk loop: ``paysvc risk simulate|train|report`` (needs the ``risk`` extra, never needed to serve)."""
