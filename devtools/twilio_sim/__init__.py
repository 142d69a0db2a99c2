"""A Twilio simulator: the subset of Messages and Lookup v2 that leadsms uses, with
signed status callbacks and inbound texts, driven by a scenario table keyed on the
destination's last four digits. See docs/twilio-simulator.md.

Twilio cannot be reached from development or CI machines; the real twilio SDK is pointed
at this server with TWILIO_BASE_URL instead, so the demo, the tests and the benchmarks
exercise exactly the code that runs in production.
"""

from devtools.twilio_sim.app import create_sim_app, run_sim
from devtools.twilio_sim.config import DEFAULT_HOST, DEFAULT_PORT, SimConfig
from devtools.twilio_sim.scenarios import Scenario, scenario_for

__all__ = ["create_sim_app", "run_sim", "SimConfig", "Scenario", "scenario_for", "DEFAULT_HOST", "DEFAULT_PORT"]
