"""One router per user flow."""
