"""Schema changes: detect what a connector now delivers against what dbt expects, the impact by
column lineage down to dashboards and their deadlines, and verified patches for the breaking ones.

    from orchestrator.schema_changes import detect, lineage, impact, patch
    expected = detect.expected_from_manifest(manifest)[("stripe", "invoice")]
    delivered = detect.delivered_from_parquet(landing / "stripe" / "invoice", "stripe", "invoice")
    diff = detect.diff(expected, delivered)                      # added/removed/renamed/type/nullability
    impacts = impact.analyze(diff, lineage.build_lineage(manifest), deadlines)
    proposal = patch.build_patch(project_dir, manifest, impacts)  # renames and type changes
    result = patch.verify(project_dir, proposal, landing_dir)     # dbt compile + build in a scratch DuckDB

Pure Python (sqlglot, no Dagster imports); the sensor lives in ``sensors/schema_changes.py``.
"""
