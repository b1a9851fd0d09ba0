"""Tools run by hand (python scripts/NAME.py); a package only so that tests and spawned helpers can import them."""
