"""The RayCluster and RayJob controllers run in-process with a fake Ray dashboard on loopback (used to
script job lifecycles and inject faults), on any plane that has CRDs and the operator's identity."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from controllers.ray import raycluster_controller, rayjob_controller
from controllers.ray.utils.dashboard import DashboardClientFactory, Loopback
from internal.app import Runtime
from support.fake_dashboard import FakeDashboard
from support.operator import running_operator


@contextlib.asynccontextmanager
async def operator_with_fake(
    plane: Any, env: Mapping[str, str] | None = None, concurrency: int = 4, fake: FakeDashboard | None = None
) -> AsyncIterator[tuple[Runtime, FakeDashboard]]:
    """The RayCluster and RayJob controllers with Ray dashboards played by a fake: its own, or ``fake``
    (kept across operator runs, as Ray keeps running while the operator is away)."""
    async with contextlib.AsyncExitStack() as stack:
        if fake is None:
            fake = await stack.enter_async_context(FakeDashboard())
        heads = fake
        factory = DashboardClientFactory(Loopback(lambda cluster: heads.cluster(cluster["metadata"]["name"]).base_url))
        opts = rayjob_controller.RayJobOptions(env=dict(env or {}))

        def rayjob_setup(rt: Runtime) -> list[Any]:
            opts.gates = rt.gates
            return rayjob_controller.setup(rt, opts, factory)

        try:
            async with running_operator(
                plane, [raycluster_controller.setup, rayjob_setup], concurrency=concurrency
            ) as rt:
                yield rt, heads
        finally:
            await factory.close()
