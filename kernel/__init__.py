"""What every layer shares and no layer owns: domain errors and their common codes, the clock,
and the database handle. Imports nothing of livecart's (decision 0026)."""
