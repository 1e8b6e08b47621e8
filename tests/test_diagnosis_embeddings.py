"""The failure memory's optional embeddings, against a local OpenAI-compatible server.

The server (Starlette on 127.0.0.1, started here) serves ``POST /v1/embeddings`` with
deterministic vectors: a hashed bag of *concepts*, where words that mean the same thing share a
concept, so it knows two messages are paraphrases when they share no word. It records every input
it receives, and can be switched to fail (HTTP 500) or to hang past the client's timeout.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import socket
import threading
import time

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrator.diagnosis import diagnose
from orchestrator.diagnosis.memory import FailureMemory, lexical_similarity
from orchestrator.store import FailureSignature, open_store

DIM = 64
MODEL = "hashed-concepts-1"
CONCEPTS = {
    # authentication that no longer holds
    "oauth": "auth", "token": "auth", "refresh": "auth", "sign": "auth", "grant": "auth",
    "consent": "auth", "login": "auth", "authorization": "auth", "credentials": "auth",
    "expired": "expiry", "lapsed": "expiry", "stale": "expiry", "outdated": "expiry",
    # storage running out
    "disk": "storage", "volume": "storage", "quota": "limit", "full": "limit", "exhausted": "limit",
}
PAST_AUTH = "The OAuth refresh token for connector hubspot_prod expired"
PARAPHRASE = "Sign-in grant lapsed, consent needed again"
PAST_DISK = "Volume full: disk quota exhausted on warehouse node 3"


def _vector(text: str) -> list[float]:
    vec = [0.0] * DIM
    for word in re.findall(r"[a-z]+", text.lower()):
        concept = CONCEPTS.get(word, word)
        weight = 3.0 if word in CONCEPTS else 0.2  # what a word means counts, filler barely does
        vec[int(hashlib.md5(concept.encode()).hexdigest(), 16) % DIM] += weight
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


class EmbeddingServer:
    def __init__(self):
        self.inputs: list[str] = []
        self.mode = "ok"  # ok | error | hang
        self.calls = 0

        async def embeddings(request: Request) -> JSONResponse:
            self.calls += 1
            body = await request.json()
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            self.inputs.extend(texts)
            if self.mode == "error":
                return JSONResponse({"error": {"message": "model overloaded", "type": "server_error"}},
                                    status_code=500)
            if self.mode == "hang":
                import asyncio

                await asyncio.sleep(3)
            return JSONResponse({
                "object": "list", "model": body["model"],
                "data": [{"object": "embedding", "index": i, "embedding": _vector(t)} for i, t in enumerate(texts)],
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            })

        app = Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def server():
    srv = EmbeddingServer()
    yield srv
    srv.stop()


@pytest.fixture()
def env(server, monkeypatch):
    server.mode, server.inputs[:] = "ok", []
    monkeypatch.setenv("ORCHESTRATOR_EMBEDDINGS_MODEL", MODEL)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-local-not-a-real-key")
    monkeypatch.setenv("ORCHESTRATOR_EMBEDDINGS_TIMEOUT", "0.5")
    return server


@pytest.fixture()
def store(tmp_path):
    st = open_store(f"sqlite:///{tmp_path / 'store.db'}", cached=False)
    yield st
    st.dispose()


def _learn(memory):
    memory.record(PAST_AUTH, "auth_expired", source="label")
    memory.record(PAST_DISK, "destination_capacity", source="label")


def test_paraphrase_without_common_words_is_matched_through_embeddings(env, store):
    # no word in common: the lexical default cannot see it
    assert lexical_similarity(PAST_AUTH, PARAPHRASE) < 0.1
    assert diagnose(PARAPHRASE, model=None).category == "unknown"  # no rule knows this wording either
    lexical = FailureMemory(store, embeddings=False)
    _learn(lexical)
    assert not lexical.nearest(PARAPHRASE, min_similarity=0.35)

    memory = FailureMemory(store)  # embeddings from the environment
    assert memory._embedder is not None
    best = memory.nearest(PARAPHRASE, k=2)
    assert best[0].category == "auth_expired" and best[0].similarity >= 0.5, best
    assert best[1].category == "destination_capacity" and best[1].similarity < 0.35
    # the signatures learned before embeddings were on were embedded (and kept) on first use
    with store.session() as s:
        rows = s.query(FailureSignature).all()
        assert rows and all(r.embedding and r.embedding_model == MODEL for r in rows)
    d = diagnose(PARAPHRASE, memory=memory)
    assert d.category == "auth_expired", d
    assert any("memory: similar to past failure" in e for e in d.evidence)
    # a lexical match is never hidden by the embeddings
    same = memory.nearest(PAST_DISK.replace("3", "7"), k=1)[0]
    assert same.category == "destination_capacity" and same.similarity > 0.9


def test_secrets_never_reach_the_embeddings_server(env, store):
    memory = FailureMemory(store)
    secrets = ["hunter2-Pa55word", "s3cr3tDsnPw", "AbCdEf0123456789GhIjKlMnOpQrStUv", "sk-live-0123456789abcdefXYZ"]
    message = (f"Login failed: password={secrets[0]} for postgres://loader:{secrets[1]}@db.internal:5432/raw; "
               f"Authorization: Bearer {secrets[2]} (api_key {secrets[3]})")
    memory.record(message, "auth_expired", source="label")
    memory.nearest(message.replace("loader", "etl"), k=1)
    diagnose(message, memory=memory)
    assert env.inputs, "the server was asked"
    sent = "\n".join(env.inputs)
    for secret in secrets:
        assert secret.lower() not in sent.lower(), secret


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_server_error_or_timeout_falls_back_to_lexical(env, store, mode, caplog):
    _learn(FailureMemory(store))  # learned while the endpoint worked: stored with embeddings
    lexical = FailureMemory(store, embeddings=False).nearest(PAST_AUTH + " again", k=2)
    with store.session() as s:
        assert all(r.embedding for r in s.query(FailureSignature).all())
    env.mode = mode
    memory = FailureMemory(store)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="orchestrator.diagnosis.memory"):
        got = memory.nearest(PAST_AUTH + " again", k=2)
        assert not memory.nearest(PARAPHRASE, min_similarity=0.35)  # only embeddings could match it
    elapsed = time.monotonic() - started
    assert [(n.signature_id, round(n.similarity, 6)) for n in got] == \
        [(n.signature_id, round(n.similarity, 6)) for n in lexical]
    assert memory._embedder.disabled and "embeddings disabled" in caplog.text
    assert elapsed < 5, elapsed  # the timeout bounds it (one retry), and a disabled embedder is not asked again
    calls = env.calls
    new_id = memory.record("A brand new failure nobody has seen", "unknown", source="observed")
    assert env.calls == calls
    with store.session() as s:
        assert s.get(FailureSignature, new_id).embedding is None  # embedded by a later memory, once it works
    env.mode = "ok"
    FailureMemory(store).nearest(PARAPHRASE)
    with store.session() as s:
        assert s.get(FailureSignature, new_id).embedding_model == MODEL
