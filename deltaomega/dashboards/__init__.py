"""Grafana dashboards as code.

``python -m deltaomega.dashboards`` (``make dashboards``) writes
``infra/grafana/dashboards/*.json`` from :mod:`.voices` (ClickHouse) and :mod:`.pipeline`
(Prometheus); ``--check`` exits non-zero when the files differ from the code, so a panel
is changed here, never by hand in the JSON.
"""
