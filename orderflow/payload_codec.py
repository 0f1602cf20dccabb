"""Workflow payloads encrypted before they reach Temporal: AES-256-GCM, key id in metadata.

Orders carry e-mail addresses, names, street addresses and payment references; feedback
carries the customer's words. Temporal keeps every input, result, signal and update in its
history and shows them in the Web UI, so each payload is encrypted by the client or worker
that writes it and decrypted only by ours (or by the API's codec endpoint for an operator).

Rotation: new payloads use the current key (`ORDERFLOW_PAYLOAD_KEY_ID`); any key listed in
`ORDERFLOW_PAYLOAD_KEYS` decrypts, so a key is retired only after no history needs it.
Payloads that were never encrypted (histories recorded before encryption) pass through.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from orderflow.settings import DEVELOPMENT_PAYLOAD_KEY, DEVELOPMENT_PAYLOAD_KEY_ID, Settings

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
# The fixed key of development mode: known to everyone, so production refuses it.
DEVELOPMENT_KEY_ID = DEVELOPMENT_PAYLOAD_KEY_ID
DEVELOPMENT_KEY = DEVELOPMENT_PAYLOAD_KEY


class PayloadKeyError(ValueError):
    """The configured keys are unusable, or a payload names a key that is not configured."""


def _decode_key(key_id: str, value: str) -> bytes:
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != 32:
        raise PayloadKeyError(
            f"ORDERFLOW_PAYLOAD_KEYS: key {key_id!r} is not the base64 of 32 bytes"
        )
    return raw


class EncryptionCodec(PayloadCodec):
    """Encrypts with the current key, decrypts with any listed one."""

    def __init__(self, keys: Mapping[str, str], current: str) -> None:
        if current not in keys:
            raise PayloadKeyError(
                f"ORDERFLOW_PAYLOAD_KEY_ID {current!r} is not one of ORDERFLOW_PAYLOAD_KEYS"
            )
        self._ciphers = {key_id: AESGCM(_decode_key(key_id, v)) for key_id, v in keys.items()}
        self._current = current

    @property
    def current_key_id(self) -> str:
        return self._current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        # The key id is authenticated with the ciphertext: a payload cannot be relabelled.
        aad = self._current.encode()
        sealed = self._ciphers[self._current].encrypt(nonce, payload.SerializeToString(), aad)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: self._current.encode()},
            data=nonce + sealed,
        )

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(f"payload encrypted with key {key_id!r}, which is not listed")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag as exc:
            raise PayloadKeyError(f"payload under key {key_id!r} fails authentication") from exc
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


def codec_for(settings: Settings) -> EncryptionCodec:
    """The codec of `settings`: its keys, or the development key when none is configured."""
    if settings.payload_keys:
        current = settings.payload_key_id or ""
        return EncryptionCodec(settings.payload_keys, current)
    return EncryptionCodec({DEVELOPMENT_KEY_ID: DEVELOPMENT_KEY}, DEVELOPMENT_KEY_ID)


def data_converter(settings: Settings) -> DataConverter:
    """The converter of every client and worker: pydantic JSON, then encrypted.

    Failure messages and stack traces are encrypted too: an error can quote the data it
    failed on, and the server keeps failures in plain text otherwise. Failures recorded
    before (in plain text) still decode.
    """
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec_for(settings),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
