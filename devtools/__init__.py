"""What ships for development: the Twilio simulator, the demo and the benchmarks.

Nothing in the product imports this package; only the `leadsms` CLI does."""
