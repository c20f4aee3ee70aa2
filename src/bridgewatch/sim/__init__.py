"""A synthetic community with ground truth, written in the public data format.

``simulate(config_for_scale("tiny", seed=1), "out/")`` writes notes, ratings, status history,
enrollment, ``truth.tsv`` and ``meta.json``; ``SCENARIOS`` names the attacks a config can apply.
"""

from bridgewatch.sim.attacks import SCENARIOS, Scenario
from bridgewatch.sim.config import SCALES, SimConfig, config_for_scale
from bridgewatch.sim.simulate import SimulationSummary, simulate

__all__ = [
    "SCALES",
    "SCENARIOS",
    "Scenario",
    "SimConfig",
    "SimulationSummary",
    "config_for_scale",
    "simulate",
]
