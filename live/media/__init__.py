"""Live video: WHIP in, WHEP out, encoded once per rendition (docs/decisions/0010)."""
