"""Who people are: buyer accounts, their passwords and the mail that reaches them (decision 0041).

Depends on ``kernel`` only; ``web`` turns accounts into sessions and routes."""
