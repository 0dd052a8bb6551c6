"""Tests of payments: Heleket's client, webhooks, top-ups and settlement."""
