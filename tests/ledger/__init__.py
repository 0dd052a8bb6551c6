"""Tests of the ledger: money moves once, by key, never below zero."""
