"""Rooms, the realtime gateway, the cross-node bus and WebRTC media. Not built yet: the live
room is the next issue; the checkout core it stands on is in ``checkout``."""
