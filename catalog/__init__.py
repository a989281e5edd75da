"""The durable record of what is sold: sellers, shops, products, SKUs, prices, stock and deals."""
