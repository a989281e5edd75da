"""The catalog's error codes: sellers, shops, products, SKUs, deals and their terms."""

from __future__ import annotations

from kernel.errors import ErrorCode


class CatalogErrorCode(ErrorCode):
    """Refusals about what a seller sells: a missing or conflicting catalog entry, a deal's
    state, or deal terms that break a rule."""

    SELLER_EXISTS = "seller_exists"
    SHOP_NOT_FOUND = "shop_not_found"
    HANDLE_TAKEN = "handle_taken"  # racing requests kept taking the new shop's address
    PRODUCT_NOT_FOUND = "product_not_found"
    PRODUCT_ARCHIVED = "product_archived"
    PRODUCT_HAS_LIVE_DEAL = "product_has_live_deal"
    PRODUCT_HAS_SKUS = "product_has_skus"
    SKU_NOT_FOUND = "sku_not_found"
    SKU_IN_USE = "sku_in_use"  # a deal points at it: set its stock to 0 instead
    STOCK_CHANGED = "stock_changed"  # orders came in since the seller center showed the stock
    STOCK_ALLOCATED = "stock_allocated"  # below what started deals were promised
    STOCK_UNAVAILABLE = "stock_unavailable"  # another started deal holds the units
    # Variants (decision 0028)
    INVALID_VARIANT = "invalid_variant"  # options or a SKU's values break a rule
    VARIANT_EXISTS = "variant_exists"  # the product has a SKU of this combination
    OPTIONS_IN_USE = "options_in_use"  # SKUs have values of the options being changed
    INVALID_SHIPPING_RULE = "invalid_shipping_rule"  # free_over given with another kind, ...
    # A deal's state
    DEAL_NOT_FOUND = "deal_not_found"
    DEAL_NOT_SCHEDULED = "deal_not_scheduled"
    DEAL_NOT_LIVE = "deal_not_live"
    DEAL_NOT_STARTED = "deal_not_started"  # live, but its window has not opened yet
    DEAL_ENDED = "deal_ended"
    # A deal's terms
    INVALID_PRICE = "invalid_price"
    DEAL_PRICE_NOT_BELOW_LIST = "deal_price_not_below_list"
    DEAL_QUANTITY_ABOVE_STOCK = "deal_quantity_above_stock"
    INVALID_QUANTITY = "invalid_quantity"  # a deal's, or a reservation's
    LIMIT_ABOVE_QUANTITY = "limit_above_quantity"
    INVALID_LIMIT = "invalid_limit"
    INVALID_WINDOW = "invalid_window"
    INVALID_COUNTDOWN = "invalid_countdown"
    INVALID_DURATION = "invalid_duration"
    # Affiliate plans (decision 0046)
    PLAN_NOT_FOUND = "plan_not_found"
    PLAN_ENDED = "plan_ended"
    INVALID_PLAN = "invalid_plan"  # details.field says which part
    DEAL_PRICE_BELOW_PLAN = "deal_price_below_plan"  # deeper than the plan lets a creator go
