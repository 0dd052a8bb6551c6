"""Tests of fulfilment: orders paid on Fragment, costs, prices and promo codes."""
