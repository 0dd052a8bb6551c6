"""Fulfilment: buying Stars and Premium on Fragment for the shop's orders."""
