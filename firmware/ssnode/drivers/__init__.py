"""Sensor drivers. Each takes its bus (UART or I2C object) as a constructor argument."""
