"""The web console's build (``static/``, made by `make console` from ``console/``)."""
