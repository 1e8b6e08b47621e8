"""`/_emulator/...`: the runtime control API shared by both emulators (no auth, loopback only).

    GET    /_emulator/state                 everything the emulator keeps (connectors, jobs, faults)
    GET    /_emulator/faults                active faults with what is left of them
    POST   /_emulator/faults                inject one fault (same schema as the scenario's faults)
    DELETE /_emulator/faults[?target=id]    clear all faults, or those of one connector
    DELETE /_emulator/faults/{fault_id}     clear one fault
    POST   /_emulator/repair/{target}       credentials fixed: the connector/connection works again
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrator.emulators.errors import HttpProblem
from orchestrator.emulators.faults import FaultBook
from orchestrator.emulators.scenario import Scenario, ScenarioError, parse_fault


class ControllableEmulator(Protocol):
    scenario: Scenario
    lock: Any

    @property
    def faults(self) -> FaultBook: ...

    def save(self) -> None: ...

    def debug_state(self) -> dict[str, Any]: ...

    def repair(self, target: str) -> None: ...


def inject_fault(engine: ControllableEmulator, api: str, data: Any) -> dict[str, Any]:
    """Validates and adds a fault; raises ScenarioError with a readable message."""
    fault = parse_fault(data, engine.scenario)
    fault_api = engine.scenario.api_of(fault.target) if fault.target else fault.api
    if fault_api != api:
        raise ScenarioError(f"fault for {fault_api} sent to the {api} emulator")
    with engine.lock:
        entry = engine.faults.add(fault, source="runtime")
        engine.save()
        return entry.model_dump(mode="json")


def control_routes(engine: ControllableEmulator, api: str) -> list[Route]:
    async def state(request: Request) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(engine.debug_state))

    async def list_faults(request: Request) -> JSONResponse:
        with engine.lock:
            return JSONResponse({"faults": [f.model_dump(mode="json") for f in engine.faults.faults]})

    async def add_fault(request: Request) -> JSONResponse:
        try:
            data = json.loads(await request.body() or b"null")
            entry = inject_fault(engine, api, data)
        except json.JSONDecodeError:
            return JSONResponse({"error": "body is not valid JSON"}, 400)
        except ScenarioError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(entry, 201)

    async def clear_faults(request: Request) -> JSONResponse:
        with engine.lock:
            removed = engine.faults.clear(request.query_params.get("target"))
            engine.save()
        return JSONResponse({"removed": removed})

    async def clear_fault(request: Request) -> JSONResponse:
        try:
            fault_id = int(request.path_params["fault_id"])
        except ValueError:
            return JSONResponse({"error": "fault id must be an integer"}, 400)
        with engine.lock:
            removed = engine.faults.remove(fault_id)
            engine.save()
        if not removed:
            return JSONResponse({"error": f"no active fault {fault_id}"}, 404)
        return JSONResponse({"removed": 1})

    async def repair(request: Request) -> JSONResponse:
        try:
            await run_in_threadpool(engine.repair, request.path_params["target"])
        except HttpProblem as exc:
            return JSONResponse({"error": f"unknown connector/connection {request.path_params['target']!r}"},
                                exc.status)
        return JSONResponse({"repaired": request.path_params["target"]})

    return [
        Route("/_emulator/state", state, methods=["GET"]),
        Route("/_emulator/faults", list_faults, methods=["GET"]),
        Route("/_emulator/faults", add_fault, methods=["POST"]),
        Route("/_emulator/faults", clear_faults, methods=["DELETE"]),
        Route("/_emulator/faults/{fault_id}", clear_fault, methods=["DELETE"]),
        Route("/_emulator/repair/{target}", repair, methods=["POST"]),
    ]
