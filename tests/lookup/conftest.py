from tests.intake.helpers import enqueued  # noqa: F401  (fixture)
