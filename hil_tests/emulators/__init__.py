"""CPython models of the sensors, speaking their datasheet wire formats."""
