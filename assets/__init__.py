"""This code location's asset builders (Fivetran, Airbyte, dbt, dashboards).

Shipped in the installed library as ``orchestrator.lib.assets`` (this folder is not an installed
package of its own); from the repository root ``assets`` is an alias of it
(``orchestrator/lib/_alias.py``). Inside this folder, import siblings relatively.
"""

if __name__ == "assets":  # the repository checkout: one module object per file
    from orchestrator.lib._alias import alias

    alias("assets", "orchestrator.lib.assets")
