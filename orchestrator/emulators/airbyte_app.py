"""HTTP face of the Airbyte emulator: public API under /api/public/v1, config API under /api/v1.

Public API: `POST /applications/token` issues Bearer tokens (basic auth with the client
credentials is accepted too, like self-managed Airbyte); lists paginate with limit/offset and
return `next` as a full URL whose query string dagster copies, `""` on the last page; errors are
problem JSON. Config API: POST-only JSON RPC style, errors as `{"message","exceptionClassName"}`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Callable
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from orchestrator.emulators.airbyte_engine import AirbyteEmulator, problem
from orchestrator.emulators.control import control_routes
from orchestrator.emulators.errors import HttpProblem
from orchestrator.emulators.state import parse_instant

PUBLIC_PREFIX = "/api/public/v1"
CONFIG_PREFIX = "/api/v1"
CONFIG_EXCEPTIONS = {
    400: "io.airbyte.commons.server.errors.BadObjectSchemaKnownException",
    401: "io.airbyte.commons.server.errors.ApplicationErrorKnownException",
    404: "io.airbyte.commons.server.errors.IdNotFoundKnownException",
    409: "io.airbyte.commons.server.errors.ValueConflictKnownException",
    422: "io.airbyte.commons.server.errors.BadObjectSchemaKnownException",
}

Handler = Callable[[Request, Any], Response]


def problem_response(exc: HttpProblem) -> JSONResponse:
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


def config_error_response(exc: HttpProblem) -> JSONResponse:
    data = exc.body.get("data") or {}
    message = data.get("message") or (
        f"Could not find {data['resourceType']} {data.get('resourceId')}" if data.get("resourceType") else None
    ) or exc.body.get("detail") or str(exc.body)
    return JSONResponse(
        {"message": message, "exceptionClassName": CONFIG_EXCEPTIONS.get(exc.status, "java.lang.RuntimeException"),
         "exceptionStack": []},
        status_code=exc.status,
    )


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise problem(400, "bad-request", f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise problem(400, "bad-request", f"{name} must be between {low} and {high}")
    return value


def paginate(request: Request, items: list[Any]) -> dict[str, Any]:
    limit = _int_param(request, "limit", 20, 1, 100)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    page = items[offset : offset + limit]
    base = str(request.url.replace(query=""))

    def link(new_offset: int) -> str:
        params = dict(request.query_params)
        params.update({"limit": str(limit), "offset": str(new_offset)})
        return f"{base}?{urlencode(params)}"

    return {
        "data": page,
        "next": link(offset + limit) if offset + limit < len(items) else "",
        "previous": link(max(0, offset - limit)) if offset > 0 else "",
    }


def build_airbyte_app(engine: AirbyteEmulator) -> Starlette:
    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and credentials:
            return engine.token_valid(credentials.strip())
        if scheme.lower() == "basic" and credentials:
            try:
                user, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
            except (ValueError, binascii.Error, UnicodeDecodeError):
                return False
            return engine.basic_auth_valid(user, password)
        return False

    def fault_targets(request: Request, body: Any) -> set[str]:
        targets = {request.path_params.get("connection_id")}
        if isinstance(body, dict):
            targets.add(body.get("connectionId"))
            job_id = body.get("id") if request.url.path.startswith(CONFIG_PREFIX + "/jobs") else None
            targets.add(_connection_of_job(job_id))
        targets.add(_connection_of_job(request.path_params.get("job_id")))
        return {t for t in targets if isinstance(t, str)}

    def _connection_of_job(job_id: Any) -> str | None:
        try:
            return engine.job(int(job_id)).connection_id
        except (TypeError, ValueError, HttpProblem):
            return None

    def endpoint(handler: Handler, config_api: bool = False):
        render_error = config_error_response if config_api else problem_response

        async def wrapped(request: Request) -> Response:
            if not authorized(request):
                return render_error(problem(401, "unauthorized", "Invalid or expired access token"))
            raw = await request.body()
            try:
                body = json.loads(raw) if raw.strip() else None
            except json.JSONDecodeError:
                return render_error(problem(400, "bad-request", "Request body is not valid JSON"))

            def run() -> Response:
                with engine.lock:
                    fault = engine.state.faults.take_http_fault(fault_targets(request, body))
                    if fault is not None:
                        engine.save()
                        return _fault_response(fault)
                engine.advance()
                return handler(request, body)

            try:
                return await run_in_threadpool(run)
            except HttpProblem as exc:
                return render_error(exc)

        return wrapped

    def body_field(body: Any, name: str, kind: type = str) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get(name), kind) or isinstance(body.get(name), bool):
            raise problem(400, "bad-request", f"Request body needs field '{name}' ({kind.__name__})")
        return body[name]

    # --- public API ---

    async def token(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return problem_response(problem(400, "bad-request", "Request body is not valid JSON"))
        body = body if isinstance(body, dict) else {}
        try:
            issued = await run_in_threadpool(engine.issue_token, body.get("client_id"), body.get("client_secret"))
        except HttpProblem as exc:
            return problem_response(exc)
        return JSONResponse(issued)

    def workspaces(request: Request, body: Any) -> Response:
        return JSONResponse(paginate(request, [engine.workspace_json(engine.spec_root.workspace_id)]))

    def workspace(request: Request, body: Any) -> Response:
        return JSONResponse(engine.workspace_json(request.path_params["workspace_id"]))

    def connections(request: Request, body: Any) -> Response:
        wanted = request.query_params.get("workspaceIds")
        ids = engine.connection_ids()
        if wanted and engine.spec_root.workspace_id not in wanted.split(","):
            ids = []
        with engine.lock:
            return JSONResponse(paginate(request, [engine.public_connection_json(i) for i in ids]))

    def connection(request: Request, body: Any) -> Response:
        with engine.lock:
            return JSONResponse(engine.public_connection_json(request.path_params["connection_id"]))

    def patch_connection(request: Request, body: Any) -> Response:
        connection_id = request.path_params["connection_id"]
        engine.patch_connection(connection_id, body if body is not None else {})
        with engine.lock:
            return JSONResponse(engine.public_connection_json(connection_id))

    def destination(request: Request, body: Any) -> Response:
        return JSONResponse(engine.destination_json(request.path_params["destination_id"]))

    def destinations(request: Request, body: Any) -> Response:
        return JSONResponse(paginate(request, [engine.destination_json(engine.spec_root.destination.id)]))

    def source(request: Request, body: Any) -> Response:
        with engine.lock:
            return JSONResponse(engine.source_json(request.path_params["source_id"]))

    def list_jobs(request: Request, body: Any) -> Response:
        query = request.query_params
        jobs = engine.jobs()
        if query.get("connectionId"):
            jobs = [j for j in jobs if j.connection_id == query["connectionId"]]
        if query.get("workspaceIds") and engine.spec_root.workspace_id not in query["workspaceIds"].split(","):
            jobs = []
        if query.get("jobType"):
            jobs = [j for j in jobs if j.job_type == query["jobType"]]
        if query.get("status"):
            jobs = [j for j in jobs if j.status == query["status"]]
        for name, field, keep in (
            ("createdAtStart", "created_at", lambda v, b: v >= b),
            ("createdAtEnd", "created_at", lambda v, b: v <= b),
            ("updatedAtStart", "updated_at", lambda v, b: v >= b),
            ("updatedAtEnd", "updated_at", lambda v, b: v <= b),
        ):
            if query.get(name):
                try:
                    bound = parse_instant(query[name])
                except ValueError:
                    raise problem(400, "bad-request", f"{name} must be an ISO-8601 timestamp") from None
                jobs = [j for j in jobs if keep(parse_instant(getattr(j, field)), bound)]
        order = query.get("orderBy", "updatedAt|DESC")
        field, _, direction = order.partition("|")
        if field not in ("createdAt", "updatedAt") or direction not in ("ASC", "DESC"):
            raise problem(400, "bad-request", "orderBy must look like createdAt|ASC or updatedAt|DESC")
        attr = "created_at" if field == "createdAt" else "updated_at"
        jobs.sort(key=lambda j: (parse_instant(getattr(j, attr)), j.id), reverse=direction == "DESC")
        with engine.lock:
            return JSONResponse(paginate(request, [engine.public_job_json(j) for j in jobs]))

    def create_job(request: Request, body: Any) -> Response:
        connection_id = body_field(body, "connectionId")
        job = engine.start_job(connection_id, body_field(body, "jobType"))
        with engine.lock:
            return JSONResponse(engine.public_job_json(job))

    def get_job(request: Request, body: Any) -> Response:
        job = engine.job(_job_id(request.path_params["job_id"]))
        with engine.lock:
            return JSONResponse(engine.public_job_json(job))

    def delete_job(request: Request, body: Any) -> Response:
        job = engine.cancel_job(_job_id(request.path_params["job_id"]))
        with engine.lock:
            return JSONResponse(engine.public_job_json(job))

    # --- config API ---

    def cfg_connection_get(request: Request, body: Any) -> Response:
        with engine.lock:
            return JSONResponse(engine.config_connection_json(body_field(body, "connectionId")))

    def cfg_connection_list(request: Request, body: Any) -> Response:
        workspace_id = body_field(body, "workspaceId")
        engine.workspace_json(workspace_id)
        with engine.lock:
            return JSONResponse({"connections": [engine.config_connection_json(i) for i in engine.connection_ids()]})

    def cfg_sync(request: Request, body: Any) -> Response:
        job = engine.start_job(body_field(body, "connectionId"), "sync")
        with engine.lock:
            return JSONResponse(engine.config_job_json(job))

    def cfg_reset(request: Request, body: Any) -> Response:
        job = engine.start_job(body_field(body, "connectionId"), "reset")
        with engine.lock:
            return JSONResponse(engine.config_job_json(job))

    def cfg_reset_streams(request: Request, body: Any) -> Response:
        # {"connectionId", "streams": [{"streamName", "streamNamespace"?}]}: reset only those streams
        streams = body.get("streams") if isinstance(body, dict) else None
        if not isinstance(streams, list) or not streams or not all(
            isinstance(s, dict) and isinstance(s.get("streamName"), str) for s in streams
        ):
            raise problem(400, "bad-request", "streams must be a non-empty list of {streamName, streamNamespace}")
        names = [s["streamName"] for s in streams]
        job = engine.start_job(body_field(body, "connectionId"), "reset", streams=names)
        with engine.lock:
            return JSONResponse(engine.config_job_json(job))

    def cfg_job_get(request: Request, body: Any) -> Response:
        job = engine.job(body_field(body, "id", int))
        with engine.lock:
            return JSONResponse(engine.config_job_json(job))

    def cfg_job_cancel(request: Request, body: Any) -> Response:
        job = engine.cancel_job(body_field(body, "id", int))
        with engine.lock:
            return JSONResponse(engine.config_job_json(job))

    def cfg_job_list(request: Request, body: Any) -> Response:
        config_id = body_field(body, "configId")
        config_types = body.get("configTypes") or ["sync", "reset_connection", "clear"]
        pagination = body.get("pagination") or {}
        size = int(pagination.get("pageSize", 200))
        offset = int(pagination.get("rowOffset", 0))
        type_of = {"sync": "sync", "reset": "reset_connection", "clear": "clear"}
        jobs = [j for j in engine.jobs() if j.connection_id == config_id and type_of[j.job_type] in config_types]
        jobs.sort(key=lambda j: j.id, reverse=True)
        with engine.lock:
            return JSONResponse({"jobs": [engine.config_job_json(j) for j in jobs[offset : offset + size]],
                                 "totalJobCount": len(jobs)})

    def cfg_destination_get(request: Request, body: Any) -> Response:
        return JSONResponse(engine.destination_json(body_field(body, "destinationId")))

    public_routes = [
        Route("/applications/token", token, methods=["POST"]),
        Route("/workspaces", endpoint(workspaces), methods=["GET"]),
        Route("/workspaces/{workspace_id}", endpoint(workspace), methods=["GET"]),
        Route("/connections", endpoint(connections), methods=["GET"]),
        Route("/connections/{connection_id}", endpoint(connection), methods=["GET"]),
        Route("/connections/{connection_id}", endpoint(patch_connection), methods=["PATCH"]),
        Route("/destinations", endpoint(destinations), methods=["GET"]),
        Route("/destinations/{destination_id}", endpoint(destination), methods=["GET"]),
        Route("/sources/{source_id}", endpoint(source), methods=["GET"]),
        Route("/jobs", endpoint(list_jobs), methods=["GET"]),
        Route("/jobs", endpoint(create_job), methods=["POST"]),
        Route("/jobs/{job_id}", endpoint(get_job), methods=["GET"]),
        Route("/jobs/{job_id}", endpoint(delete_job), methods=["DELETE"]),
    ]
    config_routes = [
        Route(path, endpoint(handler, config_api=True), methods=["POST"])
        for path, handler in (
            ("/connections/get", cfg_connection_get),
            ("/connections/list", cfg_connection_list),
            ("/connections/sync", cfg_sync),
            ("/connections/reset", cfg_reset),
            ("/connections/reset/stream", cfg_reset_streams),
            ("/connections/clear/stream", cfg_reset_streams),
            ("/jobs/get", cfg_job_get),
            ("/jobs/list", cfg_job_list),
            ("/jobs/cancel", cfg_job_cancel),
            ("/destinations/get", cfg_destination_get),
        )
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return problem_response(problem(404, "resource-not-found", f"No route for {request.method} {request.url.path}"))

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return problem_response(problem(405, "method-not-allowed", f"{request.method} is not supported on {request.url.path}"))

    return Starlette(
        routes=[
            Mount(PUBLIC_PREFIX, routes=public_routes),
            Mount(CONFIG_PREFIX, routes=config_routes),
            *control_routes(engine, api="airbyte"),
        ],
        exception_handlers={404: not_found, 405: method_not_allowed},
    )


def _job_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise problem(400, "bad-request", f"jobId must be an integer, got {raw!r}") from None


def _fault_response(fault: Any) -> JSONResponse:
    if fault.kind == "rate_limit":
        exc = problem(429, "rate-limited", f"Rate limit exceeded; retry after {fault.retry_after_s} seconds.")
        exc.headers["Retry-After"] = str(fault.retry_after_s)
        return problem_response(exc)
    return problem_response(problem(fault.status, "unexpected-problem", "Internal Server Error"))

