from tests.intake.helpers import enqueued, ready_worker  # noqa: F401  (fixtures)
