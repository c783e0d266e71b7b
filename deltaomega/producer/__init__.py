"""Producer SDK and the voice-dynamics simulator."""

from deltaomega.producer.control_listener import ControlListener
from deltaomega.producer.simulate import SimulationSummary, run_simulation
from deltaomega.producer.simulator import SimulationConfig, VoiceDynamics
from deltaomega.producer.voice_producer import DeliveryStats, VoiceProducer

__all__ = [
    "ControlListener",
    "DeliveryStats",
    "SimulationConfig",
    "SimulationSummary",
    "VoiceDynamics",
    "VoiceProducer",
    "run_simulation",
]
