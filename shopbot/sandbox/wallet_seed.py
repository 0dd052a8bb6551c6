"""Throwaway TON wallet seeds for tests and the sandbox: valid for TON's checksum, worthless anywhere else."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from fragment_api_lib.v3.keys import is_valid_mnemonic, key_pair_from_mnemonic
from fragment_api_lib.v3.wallet import wallet_address

# No BIP-39 list ships with anything installed here, and TON's check does not need one: it hashes the words
# joined by spaces (fragment_api_lib.v3.keys). So the words are made-up syllable pairs, 64 x 32 = 2048 of
# them, as many as BIP-39 has; a wallet app that insists on BIP-39 words will refuse them, which is fine
# for seeds that must never hold real money.
_FIRST = tuple(c + v for c in "bdfghjklmnprstvz" for v in "aeio")
_SECOND = tuple(c + v for c in "bdgklmnr" for v in "aeiu")
WORDS: tuple[str, ...] = tuple(a + b for a in _FIRST for b in _SECOND)
MNEMONIC_WORDS = 24


def throwaway_mnemonic() -> list[str]:
    """24 random words that pass TON's mnemonic checksum (about 256 draws, a few milliseconds)."""
    while True:
        words = [secrets.choice(WORDS) for _ in range(MNEMONIC_WORDS)]
        if is_valid_mnemonic(words):
            return words


def wallet_address_of(mnemonic: Sequence[str] | str, wallet_type: str) -> str:
    """The wallet's non-bounceable address (UQ...), as FragmentAPIv3(mnemonic, wallet_type).address gives it."""
    key = key_pair_from_mnemonic(list(mnemonic) if not isinstance(mnemonic, str) else mnemonic)
    address: str = wallet_address(wallet_type, key.public_key).to_friendly(bounceable=False)
    return address
