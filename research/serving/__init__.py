"""Microservice inference: model parts as services shared by tasks, placed on the constellation.

Services (:mod:`.services`) wrap real model parts; tasks (:mod:`.tasks`) chain them on one shared
encoder; :mod:`.placement` places replicas (greedy or MILP) per topology epoch; :mod:`.simulator`
walks requests over the contact plan; :mod:`.runtime` (in-process) and :mod:`.ray_runtime`
(Ray Serve) execute them; :mod:`.compare` and ``satedge serve`` compare schemes.
"""

from research.serving.placement import Demand, Node, Placement, PlacementProblem, greedy, optimise
from research.serving.runtime import InProcessRuntime
from research.serving.schema import Limits, Request, Response, validate
from research.serving.tasks import TASKS, Catalog, build_catalog

__all__ = [
    "TASKS",
    "Catalog",
    "Demand",
    "InProcessRuntime",
    "Limits",
    "Node",
    "Placement",
    "PlacementProblem",
    "Request",
    "Response",
    "build_catalog",
    "greedy",
    "optimise",
    "validate",
]
