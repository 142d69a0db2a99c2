"""The module `dramatiq` imports in each worker process (`leadsms worker` runs it).

Builds the worker broker from the environment (deps opened on dramatiq's loop at boot)
and imports every actor module; a worker consuming `deliveries` also runs the outbound
webhooks' dispatcher (outbound/dispatcher.py).
"""

from shared import broker as brokers
from shared import eventloop
from shared import app  # noqa: F401  (imports every actor module)
from outbound.dispatcher import Dispatcher
from shared.config import Settings
from shared.logging import configure

eventloop.install()  # before dramatiq's AsyncIO middleware makes its loop
settings = Settings.for_command("worker")
configure(settings.log_format, settings.log_level)
broker = brokers.worker_broker(settings)
broker.add_middleware(Dispatcher())  # fans new events out, in a worker consuming `deliveries`
broker = brokers.install(broker)
