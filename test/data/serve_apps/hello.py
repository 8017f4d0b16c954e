"""Ray Serve applications for test/e2e/test_rayservice_e2e.py, deployed by import path (``hello:app``).

The greeting comes from the deployment's ``user_config``, so a config change is visible in the answer
without new code; ``broken`` fails in its constructor, as a user's bad release would (DEPLOY_FAILED).
Replicas ask for a tenth of a CPU: the test head has two.
"""

from __future__ import annotations

from typing import Any

from ray import serve


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Hello:
    def __init__(self) -> None:
        self.greeting = "hello"

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.greeting = str(config.get("greeting", "hello"))

    async def __call__(self, request: Any) -> str:
        return self.greeting


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Broken:
    def __init__(self) -> None:
        raise RuntimeError("this release cannot start")

    async def __call__(self, request: Any) -> str:
        return "unreachable"


# serve.deployment turns the classes into Deployments; mypy sees the classes.
app = Hello.bind()  # type: ignore[attr-defined]
broken = Broken.bind()  # type: ignore[attr-defined]
