"""Braze back into the warehouse: segment exports and the Currents receiver."""
