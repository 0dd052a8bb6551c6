"""The TON side of the Fragment emulator: comment cells, ton_proof, and reading a wallet's signed external.

Cells, BoCs and addresses come from fragment-api-lib's own code (fine in an emulator); the message layouts
are read here from the TL-B schemes, not from the library's builders, so a library bug would not hide itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing
from fragment_api_lib.v3.address import Address, load_address, store_address
from fragment_api_lib.v3.cell import Cell, Slice, begin_cell, cell_from_b64
from fragment_api_lib.v3.wallet import default_wallet_id

V5_SIGNED_EXTERNAL = 0x7369676E
V5_SEND_MSG = 0x0EC3C86D
MAX_MESSAGES = {"v4r2": 4, "v5r1": 255}
SIGNATURE_BITS = 512
COMMENT_OP = 0
# A comment's first cell holds 32 bits of op and 123 bytes of text; each tail cell 127 bytes (snake format).
FIRST_CHUNK, NEXT_CHUNK = (1023 - 32) // 8, 1023 // 8


class InvalidExternal(ValueError):
    """The BoC is not a signed wallet external this service could relay."""


@dataclass(frozen=True)
class OutMessage:
    """One internal message a wallet was told to send."""

    destination: Address
    bounce: bool
    amount: int
    body: Cell
    mode: int


@dataclass(frozen=True)
class SignedExternal:
    """An external message to a wallet, with the wallet's order inside it still unread."""

    destination: Address
    state_init: Cell | None
    body: Cell
    message_hash: str  # hex hash of the external as submitted
    normalized_hash: str  # hex; what fragment-api-lib's prepare() calls normalized_hash


@dataclass(frozen=True)
class WalletOrder:
    """The signed part of a wallet external: what the wallet contract checks and then does."""

    wallet_id: int
    valid_until: int
    seqno: int
    messages: tuple[OutMessage, ...]
    signed_hash: bytes
    signature: bytes


def comment_cell(text: str) -> Cell:
    """A text comment body: op 0, then UTF-8, continued in refs when it does not fit (snake format)."""
    data = text.encode()
    chunks = [data[:FIRST_CHUNK]] + [data[i : i + NEXT_CHUNK] for i in range(FIRST_CHUNK, len(data), NEXT_CHUNK)]
    tail: Cell | None = None
    for chunk in reversed(chunks[1:]):
        builder = begin_cell().store_bytes(chunk)
        tail = (builder.store_ref(tail) if tail is not None else builder).end_cell()
    head = begin_cell().store_uint(COMMENT_OP, 32).store_bytes(chunks[0])
    return (head.store_ref(tail) if tail is not None else head).end_cell()


def comment_of(body: Cell) -> str | None:
    """The text of a comment body, or None when the body is something else."""
    s = body.begin_parse()
    if s.remaining_bits < 32 or s.load_uint(32) != COMMENT_OP:
        return None
    data = b""
    while True:
        chunk: bytes = s.load_bytes(s.remaining_bits // 8)
        data += chunk
        if not s.remaining_refs:
            break
        s = s.load_ref().begin_parse()
    return data.decode(errors="replace")


def ton_proof_digest(wallet: Address, domain: str, timestamp: int, payload: str) -> bytes:
    """What a TON Connect v2 ton_proof signs: sha256(0xffff ++ "ton-connect" ++ sha256(message))."""
    domain_bytes = domain.encode()
    message = (
        b"ton-proof-item-v2/"
        + wallet.workchain.to_bytes(4, "big", signed=True)
        + wallet.hash
        + len(domain_bytes).to_bytes(4, "little")
        + domain_bytes
        + timestamp.to_bytes(8, "little")
        + payload.encode()
    )
    return hashlib.sha256(b"\xff\xff" + b"ton-connect" + hashlib.sha256(message).digest()).digest()


def signature_valid(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Ed25519, as the wallet contract and TON Connect verify it."""
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False
    return True


def read_external(boc: str) -> SignedExternal:
    """Parse ext_in_msg_info + init + body from a base64 BoC (TL-B `Message X`)."""
    try:
        root = cell_from_b64(boc)
        s = root.begin_parse()
        if s.load_uint(2) != 0b10:
            raise InvalidExternal("not an inbound external message")
        load_address(s)  # src: addr_none; an addr_extern would fail in load_address, as it should here
        destination = load_address(s)
        if destination is None:
            raise InvalidExternal("the message has no destination")
        s.load_coins()  # import_fee
        state_init = _load_state_init(s)
        body = _load_body(s)
    except InvalidExternal:
        raise
    except ValueError as error:  # the library's parser says ValueError for every malformed BoC
        raise InvalidExternal(f"not a valid message BoC: {error}") from None
    return SignedExternal(
        destination=destination,
        state_init=state_init,
        body=body,
        message_hash=root.hash().hex(),
        normalized_hash=_normalized_hash(destination, body),
    )


def read_wallet_order(wallet_type: str, body: Cell) -> WalletOrder:
    """The signed instruction inside a v4r2 or v5r1 external body."""
    try:
        return _read_v4r2(body) if wallet_type == "v4r2" else _read_v5r1(body)
    except InvalidExternal:
        raise
    except ValueError as error:
        raise InvalidExternal(f"not a {wallet_type} wallet message: {error}") from None


def expected_wallet_id(wallet_type: str) -> int:
    wallet_id: int = default_wallet_id(wallet_type)
    return wallet_id


def _read_v4r2(body: Cell) -> WalletOrder:
    """signature:bits512 wallet_id:uint32 valid_until:uint32 seqno:uint32 op:uint8=0 (mode:uint8 ^msg)*"""
    if len(body.bits) < SIGNATURE_BITS:
        raise InvalidExternal("the body is too short to be signed")
    signature = _bits_to_bytes(body.bits[:SIGNATURE_BITS])
    unsigned = Cell(body.bits[SIGNATURE_BITS:], body.refs)
    s = unsigned.begin_parse()
    wallet_id, valid_until, seqno = s.load_uint(32), s.load_uint(32), s.load_uint(32)
    if s.load_uint(8) != 0:
        raise InvalidExternal("only the simple-send op is relayed")
    messages = []
    while s.remaining_bits or s.remaining_refs:
        mode = s.load_uint(8)
        messages.append(_read_internal(s.load_ref(), mode))
    return WalletOrder(wallet_id, valid_until, seqno, tuple(messages), unsigned.hash(), signature)


def _read_v5r1(body: Cell) -> WalletOrder:
    """0x7369676e wallet_id valid_until seqno (Maybe ^OutList) has_extended:bit=0, then the signature."""
    if len(body.bits) < SIGNATURE_BITS:
        raise InvalidExternal("the body is too short to be signed")
    signature = _bits_to_bytes(body.bits[-SIGNATURE_BITS:])
    unsigned = Cell(body.bits[:-SIGNATURE_BITS], body.refs)
    s = unsigned.begin_parse()
    if s.load_uint(32) != V5_SIGNED_EXTERNAL:
        raise InvalidExternal("not a signed external request")
    wallet_id, valid_until, seqno = s.load_uint(32), s.load_uint(32), s.load_uint(32)
    out_list = s.load_maybe_ref()
    if s.load_bit():
        raise InvalidExternal("extended actions are not relayed")
    _ensure_consumed(s)
    messages = []
    node = out_list
    # out_list is a chain from the LAST action back to an empty cell: walk it, then restore the order.
    while node is not None and (node.bits or node.refs):
        ns = node.begin_parse()
        previous = ns.load_ref()
        if ns.load_uint(32) != V5_SEND_MSG:
            raise InvalidExternal("only send-message actions are relayed")
        mode = ns.load_uint(8)
        messages.append(_read_internal(ns.load_ref(), mode))
        _ensure_consumed(ns)
        node = previous
        if len(messages) > MAX_MESSAGES["v5r1"]:
            raise InvalidExternal("too many actions")
    messages.reverse()
    return WalletOrder(wallet_id, valid_until, seqno, tuple(messages), unsigned.hash(), signature)


def _read_internal(cell: Cell, mode: int) -> OutMessage:
    """int_msg_info$0 ihr_disabled bounce bounced src dest value ihr_fee fwd_fee lt at, init, body."""
    s = cell.begin_parse()
    if s.load_bit():
        raise InvalidExternal("an action sends something other than an internal message")
    s.load_bit()  # ihr_disabled
    bounce = bool(s.load_bit())
    s.load_bit()  # bounced
    load_address(s)  # src: the wallet fills it in
    destination = load_address(s)
    if destination is None:
        raise InvalidExternal("an internal message has no destination")
    amount = s.load_coins()
    if s.load_bit():
        raise InvalidExternal("extra currencies are not part of any payment")
    s.load_coins()  # ihr_fee
    s.load_coins()  # fwd_fee
    s.load_uint(64)  # created_lt
    s.load_uint(32)  # created_at
    if _load_state_init(s) is not None:
        raise InvalidExternal("an internal message deploys a contract")
    return OutMessage(destination, bounce, amount, _load_body(s), mode)


def _load_state_init(s: Slice) -> Cell | None:
    """init:(Maybe (Either StateInit ^StateInit)); an inline StateInit is cut out as its own cell."""
    if not s.load_bit():
        return None
    if s.load_bit():
        return s.load_ref()
    bit_start, ref_start = s.bit_pos, s.ref_pos
    if s.load_bit():
        s.load_uint(5)  # split_depth
    if s.load_bit():
        s.load_uint(2)  # special: tick, tock
    s.load_maybe_ref()  # code
    s.load_maybe_ref()  # data
    s.load_maybe_ref()  # library
    return Cell(s.cell.bits[bit_start : s.bit_pos], s.cell.refs[ref_start : s.ref_pos])


def _load_body(s: Slice) -> Cell:
    """body:(Either X ^X): the rest of this cell, or one ref and nothing after it."""
    if s.load_bit():
        body = s.load_ref()
        _ensure_consumed(s)
        return body
    return Cell(s.cell.bits[s.bit_pos :], s.cell.refs[s.ref_pos :])


def _ensure_consumed(s: Slice) -> None:
    if s.remaining_bits or s.remaining_refs:
        raise InvalidExternal("unexpected data after the message")


def _normalized_hash(destination: Address, body: Cell) -> str:
    """The external with src none, import_fee 0, no init and the body in a ref: stable across re-wrapping."""
    b = begin_cell().store_uint(0b10, 2)
    store_address(b, None)
    store_address(b, destination)
    b.store_coins(0).store_bit(0).store_bit(1).store_ref(body)
    digest: bytes = b.end_cell().hash()
    return digest.hex()


def _bits_to_bytes(bits: tuple[int, ...]) -> bytes:
    return int("".join(map(str, bits)), 2).to_bytes(len(bits) // 8, "big")
