"""A query of the grafana-clickhouse-datasource plugin for grafana-foundation-sdk, which
ships builders for Grafana's own datasources but not this one."""

from __future__ import annotations

from typing import Literal

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

PLUGIN = "grafana-clickhouse-datasource"
#: the uid infra/grafana/provisioning/datasources gives the datasource
DATASOURCE = DataSourceRef(type_val=PLUGIN, uid="deltaomega-clickhouse")

QueryType = Literal["timeSeries", "table"]
#: the plugin's backend formats (sqlds): 0 time series, 1 table
_FORMAT = {"timeSeries": 0, "table": 1}


class ClickHouseQuery(cogvariants.Dataquery):
    def __init__(self, ref_id: str, raw_sql: str, query_type: QueryType) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.query_type = query_type

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": DATASOURCE.to_json(),
            "editorType": "sql",
            "queryType": self.query_type,
            "format": _FORMAT[self.query_type],
            "rawSql": self.raw_sql,
        }


class ClickHouseQueryBuilder(cogbuilder.Builder[ClickHouseQuery]):
    def __init__(self, raw_sql: str, query_type: QueryType = "table", ref_id: str = "A") -> None:
        self._internal = ClickHouseQuery(ref_id, raw_sql, query_type)

    def build(self) -> ClickHouseQuery:
        return self._internal
