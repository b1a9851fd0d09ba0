"""The meter: training and serving cost from scenarios, assumptions and measured runs."""
