"""HTTP face of the Fivetran emulator: REST API v1 (legacy /connectors and new /connections paths).

Envelope `{"code":"Success","message":...,"data":...}`; errors `{"code","message"}` with the HTTP
status; HTTP Basic auth with the configured key/secret. Lists paginate with `cursor`/`limit` and
return `next_cursor` only, as Fivetran documents it (https://fivetran.com/docs/rest-api/pagination);
dagster-fivetran 0.29.27 reads `nextCursor`, which the project's client subclass corrects.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrator.emulators.control import control_routes
from orchestrator.emulators.errors import HttpProblem
from orchestrator.emulators.fivetran_engine import FivetranEmulator, invalid_input

HTTP_FAULT_CODES = {500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable",
                    504: "GatewayTimeout"}


def success(data: Any = None, message: str = "Operation performed.", status: int = 200) -> JSONResponse:
    body: dict[str, Any] = {"code": "Success", "message": message}
    if data is not None:
        body["data"] = data
    return JSONResponse(body, status_code=status)


def problem_response(exc: HttpProblem) -> JSONResponse:
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


def _paginate(items: list[Any], request: Request) -> dict[str, Any]:
    try:
        limit = int(request.query_params.get("limit", 100))
    except ValueError:
        raise invalid_input("Query parameter 'limit' must be an integer") from None
    if not 1 <= limit <= 1000:
        raise invalid_input("Query parameter 'limit' must be between 1 and 1000")
    offset = 0
    cursor = request.query_params.get("cursor")
    if cursor:
        try:
            offset = int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("offset:"))
        except (ValueError, binascii.Error):
            raise invalid_input(f"Invalid cursor '{cursor}'") from None
    page = items[offset : offset + limit]
    data: dict[str, Any] = {"items": page}
    if offset + limit < len(items):
        next_cursor = base64.urlsafe_b64encode(f"offset:{offset + limit}".encode()).decode()
        data["next_cursor"] = next_cursor
    return data


def build_fivetran_app(engine: FivetranEmulator, api_key: str, api_secret: str) -> Starlette:
    expected = f"{api_key}:{api_secret}".encode()

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            supplied = base64.b64decode(header[6:].strip(), validate=True)
        except (ValueError, binascii.Error):
            return False
        return hmac.compare_digest(supplied, expected)

    def endpoint(handler):
        """Auth, scripted HTTP faults, lazy time advance, then the handler in a worker thread."""

        async def wrapped(request: Request) -> JSONResponse:
            if not authorized(request):
                return JSONResponse(
                    {"code": "AuthFailed", "message": "Missing or invalid API key and secret"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="Fivetran API"'},
                )
            raw = await request.body()
            try:
                body = json.loads(raw) if raw.strip() else None
            except json.JSONDecodeError:
                return problem_response(invalid_input("Request body is not valid JSON"))

            def run() -> JSONResponse:
                with engine.lock:
                    targets = {v for k, v in request.path_params.items() if k == "connector_id"}
                    fault = engine.state.faults.take_http_fault(targets)
                    if fault is not None:
                        engine.save()
                        return _fault_response(fault)
                engine.advance()
                return handler(request, body)

            try:
                return await run_in_threadpool(run)
            except HttpProblem as exc:
                return problem_response(exc)

        return wrapped

    def groups(request: Request, body: Any) -> JSONResponse:
        items = [engine.group_json(g.id) for g in engine.scenario.fivetran.groups]
        return success(_paginate(items, request))

    def group(request: Request, body: Any) -> JSONResponse:
        return success(engine.group_json(request.path_params["group_id"]))

    def group_connectors(request: Request, body: Any) -> JSONResponse:
        group_id = request.path_params["group_id"]
        engine.group_json(group_id)  # 404 for an unknown group
        items = [engine.connector_json(cid) for cid in engine.connector_ids(group_id)]
        return success(_paginate(items, request))

    def all_connectors(request: Request, body: Any) -> JSONResponse:
        group_id = request.query_params.get("group_id")
        items = [engine.connector_json(cid) for cid in engine.connector_ids(group_id)]
        return success(_paginate(items, request))

    def destination(request: Request, body: Any) -> JSONResponse:
        return success(engine.destination_json(request.path_params["destination_id"]))

    def connector(request: Request, body: Any) -> JSONResponse:
        return success(engine.connector_json(request.path_params["connector_id"]))

    def patch_connector(request: Request, body: Any) -> JSONResponse:
        connector_id = request.path_params["connector_id"]
        engine.patch(connector_id, body if body is not None else {})
        return success(engine.connector_json(connector_id), "Connection has been updated")

    def force(request: Request, body: Any) -> JSONResponse:
        engine.trigger(request.path_params["connector_id"], "incremental")
        return success(message="Sync has been successfully triggered for connection with id "
                       f"'{request.path_params['connector_id']}'")

    def sync(request: Request, body: Any) -> JSONResponse:
        # Newer endpoint: {"force": true} restarts a running sync, otherwise it is left running.
        force_restart = bool((body or {}).get("force", False)) if isinstance(body, dict) else False
        engine.trigger(request.path_params["connector_id"], "incremental", restart_running=force_restart)
        return success(message="Sync has been successfully triggered for connection with id "
                       f"'{request.path_params['connector_id']}'")

    def resync(request: Request, body: Any) -> JSONResponse:
        connector_id = request.path_params["connector_id"]
        scope = body.get("scope") if isinstance(body, dict) else None
        if scope:
            engine.trigger(connector_id, "table_resync", resync_tables=scope)
        else:
            engine.trigger(connector_id, "resync")
        return success(message=f"Re-sync has been triggered successfully for connection with id '{connector_id}'")

    def table_resync(request: Request, body: Any) -> JSONResponse:
        connector_id = request.path_params["connector_id"]
        engine.trigger(connector_id, "table_resync", resync_tables=body)
        return success(message=f"Re-sync has been triggered successfully for connection with id '{connector_id}'")

    def schemas(request: Request, body: Any) -> JSONResponse:
        return success(engine.schema_config_json(request.path_params["connector_id"]))

    def patch_schemas(request: Request, body: Any) -> JSONResponse:
        connector_id = request.path_params["connector_id"]
        engine.patch_schema_config(connector_id, body if body is not None else {})
        return success(engine.schema_config_json(connector_id))

    def columns(request: Request, body: Any) -> JSONResponse:
        p = request.path_params
        return success(engine.columns_json(p["connector_id"], p["schema"], p["table"]))

    def setup_tests(request: Request, body: Any) -> JSONResponse:
        connector_id = request.path_params["connector_id"]
        engine.run_setup_tests(connector_id)
        return success(engine.connector_json(connector_id), "Setup tests were completed")

    routes = [
        Route("/v1/groups", endpoint(groups), methods=["GET"]),
        Route("/v1/groups/{group_id}", endpoint(group), methods=["GET"]),
        Route("/v1/destinations/{destination_id}", endpoint(destination), methods=["GET"]),
    ]
    for noun in ("connectors", "connections"):
        base = f"/v1/{noun}/{{connector_id}}"
        routes += [
            Route(f"/v1/groups/{{group_id}}/{noun}", endpoint(group_connectors), methods=["GET"]),
            Route(f"/v1/{noun}", endpoint(all_connectors), methods=["GET"]),
            Route(base, endpoint(connector), methods=["GET"]),
            Route(base, endpoint(patch_connector), methods=["PATCH"]),
            Route(f"{base}/force", endpoint(force), methods=["POST"]),
            Route(f"{base}/sync", endpoint(sync), methods=["POST"]),
            Route(f"{base}/resync", endpoint(resync), methods=["POST"]),
            Route(f"{base}/schemas/tables/resync", endpoint(table_resync), methods=["POST"]),
            Route(f"{base}/schemas", endpoint(schemas), methods=["GET"]),
            Route(f"{base}/schemas", endpoint(patch_schemas), methods=["PATCH"]),
            Route(f"{base}/schemas/{{schema}}/tables/{{table}}/columns", endpoint(columns), methods=["GET"]),
            Route(f"{base}/test", endpoint(setup_tests), methods=["POST"]),
        ]
    routes += control_routes(engine, api="fivetran")

    async def not_found_handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"code": "NotFound", "message": f"Resource {request.url.path} not found"}, 404)

    async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"code": "MethodNotAllowed", "message": f"{request.method} is not supported "
                             f"on {request.url.path}"}, 405)

    return Starlette(routes=routes, exception_handlers={404: not_found_handler, 405: method_not_allowed})


def _fault_response(fault: Any) -> JSONResponse:
    if fault.kind == "rate_limit":
        return JSONResponse(
            {"code": "TooManyRequests",
             "message": f"Request rate limit exceeded. Retry after {fault.retry_after_s} seconds."},
            status_code=429,
            headers={"Retry-After": str(fault.retry_after_s)},
        )
    code = HTTP_FAULT_CODES.get(fault.status, "InternalServerError")
    return JSONResponse(
        {"code": code, "message": "The server encountered an internal error. Please try again later."},
        status_code=fault.status,
    )
