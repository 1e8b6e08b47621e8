"""Writes an approved patch on a new git branch of the dbt project; opens a pull request where a
Git host token is configured (GitHub-compatible API: ``POST /repos/{owner}/{repo}/pulls``).

The branch is built in a temporary ``git worktree`` from the base branch, so the checkout people
work in (and its main branch) is never touched; the branch is pushed to the configured remote
when there is one. Settings (environment):

- ``ORCHESTRATOR_DBT_GIT_DIR``: the git repository holding the dbt project (default: the
  project's own folder or the nearest parent with ``.git``);
- ``ORCHESTRATOR_DBT_GIT_BASE``: the base branch (default ``main``);
- ``ORCHESTRATOR_DBT_GIT_REMOTE``: remote to push to (default ``origin`` when it exists);
- ``ORCHESTRATOR_GIT_HOST_TOKEN`` (or ``GITHUB_TOKEN``), ``ORCHESTRATOR_GIT_HOST_API`` (default
  ``https://api.github.com``), ``ORCHESTRATOR_GIT_HOST_REPO`` (``owner/name``): the pull request.
  The token is sent as a bearer header only, never logged.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from orchestrator.scrubbing import scrub_pii


class PublishError(Exception):
    pass


@dataclass
class Published:
    branch: str
    commit: str
    pr_url: str | None


@dataclass
class GitHost:
    api_url: str
    repo: str  # owner/name
    token: str

    @classmethod
    def from_env(cls) -> GitHost | None:
        token = os.environ.get("ORCHESTRATOR_GIT_HOST_TOKEN") or os.environ.get("GITHUB_TOKEN")
        repo = os.environ.get("ORCHESTRATOR_GIT_HOST_REPO")
        if not token or not repo:
            return None
        return cls(os.environ.get("ORCHESTRATOR_GIT_HOST_API", "https://api.github.com").rstrip("/"), repo, token)

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> str:
        response = httpx.post(
            f"{self.api_url}/repos/{self.repo}/pulls",
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/vnd.github+json"},
            json={"title": title, "head": head, "base": base, "body": body, "draft": False}, timeout=30,
        )
        if response.status_code >= 300:
            raise PublishError(f"pull request on {self.repo} refused: HTTP {response.status_code} "
                               f"{response.text[:300]}")
        return response.json().get("html_url") or response.json().get("url", "")


class GitPublisher:
    def __init__(self, repo_dir: Path, project_subdir: str = "", base: str | None = None,
                 remote: str | None = None, host: GitHost | None = None):
        self.repo_dir = Path(repo_dir)
        self.project_subdir = project_subdir.strip("/")
        self.base = base or os.environ.get("ORCHESTRATOR_DBT_GIT_BASE", "main")
        self.remote = remote if remote is not None else os.environ.get("ORCHESTRATOR_DBT_GIT_REMOTE")
        self.host = host

    @classmethod
    def for_project(cls, project_dir: Path) -> GitPublisher:
        project_dir = Path(project_dir).resolve()
        repo = os.environ.get("ORCHESTRATOR_DBT_GIT_DIR")
        root = Path(repo).resolve() if repo else next(
            (p for p in [project_dir, *project_dir.parents] if (p / ".git").exists()), None)
        if root is None:
            raise PublishError(f"{project_dir} is not in a git repository (set ORCHESTRATOR_DBT_GIT_DIR)")
        return cls(root, str(project_dir.relative_to(root)) if project_dir != root else "", host=GitHost.from_env())

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        result = subprocess.run(["git", *args], cwd=cwd or self.repo_dir, capture_output=True, text=True,
                                env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        if result.returncode != 0:
            raise PublishError(f"git {' '.join(args[:2])} failed: {result.stderr.strip()[:500]}")
        return result.stdout.strip()

    def publish(self, proposal) -> Published:
        branch = f"schema-fix/{re.sub(r'[^A-Za-z0-9._-]+', '-', '-'.join(proposal.tables))[:60]}-{proposal.id[:8]}"
        if branch == self.base:
            raise PublishError("refusing to write on the base branch")
        with tempfile.TemporaryDirectory(prefix="schema-patch-") as tmp:
            work = Path(tmp) / "worktree"
            self._git("worktree", "add", "-b", branch, str(work), self.base)
            try:
                for path, text in proposal.files.items():
                    target = work / self.project_subdir / path if self.project_subdir else work / path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text, encoding="utf-8")
                self._git("add", "-A", cwd=work)
                # leaves the process (the remote, the pull request): scrubbed like every other sink
                message = scrub_pii(f"Schema change fix: {proposal.summary}") + \
                    f"\n\nProposal {proposal.id}, approved by {proposal.decided_by}. Verified: " + \
                    scrub_pii(', '.join((proposal.verification or {}).get('commands', [])))
                self._git("-c", "user.name=sla-orchestrator", "-c", "user.email=sla-orchestrator@localhost",
                          "commit", "-m", message, cwd=work)
                commit = self._git("rev-parse", "HEAD", cwd=work)
                remote = self.remote
                if remote is None and "origin" in self._git("remote").split():
                    remote = "origin"
                if remote:
                    self._git("push", remote, f"{branch}:{branch}", cwd=work)
            finally:
                self._git("worktree", "remove", "--force", str(work))
        pr_url = None
        if self.host is not None:
            verification = proposal.verification or {}
            body = "\n".join([
                f"Answers: {proposal.summary}", "", "Impact:",
                *[f"- {i['summary']}" for i in proposal.impact], "",
                f"Verified on the new data in a scratch database: {'passed' if verification.get('ok') else 'FAILED'}",
                *[f"- `{c}`" for c in verification.get("commands", [])], "",
                "```diff", proposal.diff[:50000], "```",
            ])
            pr_url = self.host.open_pull_request(branch, self.base, scrub_pii(f"Schema change fix: {proposal.summary}")[:250],
                                                 scrub_pii(body))
        return Published(branch, commit, pr_url)
