"""Live rooms' error codes: rooms, chat, the websocket protocol, and video (WHIP and WHEP)."""

from __future__ import annotations

from kernel.errors import ErrorCode


class LiveErrorCode(ErrorCode):
    """Refusals from a room, its chat, its websocket, or its video; and why a video peer's
    connection failed (``stream.failed``'s code)."""

    # Rooms
    ROOM_NOT_FOUND = "room_not_found"
    ROOM_NOT_LIVE = "room_not_live"
    ROOM_ENDED = "room_ended"
    ROOM_BUSY = "room_busy"  # the room changed too often while a call acted: retry
    ROOM_STATE_MISMATCH = "room_state_mismatch"  # Redis holds another room under this id
    INVALID_TITLE = "invalid_title"
    BAG_FULL = "bag_full"
    PRODUCT_NOT_IN_BAG = "product_not_in_bag"
    SKU_NOT_IN_BAG = "sku_not_in_bag"
    DEAL_NOT_IN_ROOM = "deal_not_in_room"
    # Follows and reminders (decision 0045)
    SELLER_NOT_FOUND = "seller_not_found"
    ROOM_NOT_SCHEDULED = "room_not_scheduled"  # a reminder for a room live or over
    # Chat
    EMPTY_CHAT = "empty_chat"
    CHAT_TOO_LONG = "chat_too_long"
    INVALID_CHAT = "invalid_chat"  # the text is not a string
    CHAT_RATE_LIMITED = "chat_rate_limited"
    MUTED = "muted"
    BANNED = "banned"  # the creator banned this user from the room
    CHAT_NOT_FOUND = "chat_not_found"
    INVALID_USER = "invalid_user"  # a mute's user id
    # Auctions (decision 0031)
    AUCTION_NOT_FOUND = "auction_not_found"
    AUCTION_CLOSED = "auction_closed"  # its end passed on Redis's clock, or it was closed
    BID_TOO_LOW = "bid_too_low"  # below the start price or one increment over the price
    BID_NOT_HIGHER = "bid_not_higher"  # the leader's new maximum must beat their old one
    SHILL_BID = "shill_bid"  # the shop's own seller bidding
    NO_BUY_NOW = "no_buy_now"
    BUY_NOW_GONE = "buy_now_gone"  # the first bid took buy-it-now away
    INVALID_AUCTION = "invalid_auction"  # terms out of range (details.field says which)
    PAYMENT_METHOD_REQUIRED = "payment_method_required"  # bid after PUT /api/payment-method
    UNPAID_WIN = "unpaid_win"  # the lot was offered to this user, who let it lapse
    # Giveaways (decision 0032)
    GIVEAWAY_NOT_FOUND = "giveaway_not_found"
    GIVEAWAY_CLOSED = "giveaway_closed"
    GIVEAWAY_OPEN = "giveaway_open"  # its entries are published with the draw
    NOT_ELIGIBLE = "not_eligible"  # details.need: "watch" (details.wait_ms) or "buyer"
    INVALID_GIVEAWAY = "invalid_giveaway"
    # Comment-to-buy (decision 0033): a chat line's claim, answered privately
    INVALID_KEYWORDS = "invalid_keywords"
    NOTHING_PINNED = "nothing_pinned"
    VARIANT_REQUIRED = "variant_required"  # details.variants
    UNKNOWN_VARIANT = "unknown_variant"  # details.variants
    INVALID_CLAIM = "invalid_claim"  # a quantity out of range (details.max_qty)
    # The websocket protocol
    MALFORMED_MESSAGE = "malformed_message"  # JSON, but not an object with a "type"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"
    HELLO_REQUIRED = "hello_required"
    ALREADY_JOINED = "already_joined"  # a second hello
    VIEWER_SESSION_REQUIRED = "viewer_session_required"  # buying needs a guest session
    # Video
    INVALID_SDP = "invalid_sdp"
    SDP_TOO_LARGE = "sdp_too_large"
    NO_VIDEO = "no_video"
    UNSUPPORTED_CODEC = "unsupported_codec"
    ALREADY_PUBLISHING = "already_publishing"
    STREAM_NOT_LIVE = "stream_not_live"
    TOO_MANY_VIEWERS = "too_many_viewers"
    SHUTTING_DOWN = "shutting_down"
    SESSION_CLOSED = "session_closed"  # ended while its offer was being answered
    SESSION_NOT_FOUND = "session_not_found"
    SESSION_ENDED = "session_ended"
    # Why a peer's connection failed: stream.failed's code, a later DELETE's details.reason
    ICE_FAILED = "ice_failed"
    DTLS_FAILED = "dtls_failed"
    CONNECT_TIMEOUT = "connect_timeout"
