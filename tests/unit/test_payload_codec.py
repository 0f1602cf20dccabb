"""The payload codec: AES-256-GCM under the current key, any listed key decrypts, plain
payloads pass through, and a wrong key or a touched byte is a clear error."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from orderflow.payload_codec import (
    DEVELOPMENT_KEY,
    DEVELOPMENT_KEY_ID,
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    PayloadKeyError,
    codec_for,
    data_converter,
)
from orderflow.settings import Settings
from stack.temporal import TemporalDevServer


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"email":"ann@example.com"}')


async def test_round_trip_hides_the_data_and_names_the_key() -> None:
    codec = EncryptionCodec({"k1": _key()}, "k1")
    (sealed,) = await codec.encode([PLAIN])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == b"k1"
    assert b"ann@example.com" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [PLAIN]
    # A fresh nonce each time: equal payloads do not look equal.
    (again,) = await codec.encode([PLAIN])
    assert again.data != sealed.data


async def test_rotation_new_key_encrypts_old_key_still_decrypts() -> None:
    old, new = _key(), _key()
    before = EncryptionCodec({"k1": old}, "k1")
    (sealed_old,) = await before.encode([PLAIN])
    after = EncryptionCodec({"k1": old, "k2": new}, "k2")
    (sealed_new,) = await after.encode([PLAIN])
    assert sealed_new.metadata[KEY_ID_METADATA] == b"k2"
    assert await after.decode([sealed_old, sealed_new]) == [PLAIN, PLAIN]
    # Once the old key is removed, what it sealed names the missing key.
    retired = EncryptionCodec({"k2": new}, "k2")
    with pytest.raises(PayloadKeyError, match="'k1'"):
        await retired.decode([sealed_old])


async def test_a_touched_byte_or_a_relabelled_key_fails() -> None:
    a, b = _key(), _key()
    codec = EncryptionCodec({"k1": a, "k2": b}, "k1")
    (sealed,) = await codec.encode([PLAIN])
    touched = Payload()
    touched.CopyFrom(sealed)
    touched.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(PayloadKeyError, match="authentication"):
        await codec.decode([touched])
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID_METADATA] = b"k2"
    with pytest.raises(PayloadKeyError):
        await codec.decode([relabelled])


async def test_payloads_never_encrypted_pass_through() -> None:
    codec = EncryptionCodec({"k1": _key()}, "k1")
    assert await codec.decode([PLAIN]) == [PLAIN]


def test_bad_configuration_names_the_setting() -> None:
    with pytest.raises(PayloadKeyError, match="ORDERFLOW_PAYLOAD_KEYS"):
        EncryptionCodec({"k1": "c2hvcnQ="}, "k1")
    with pytest.raises(PayloadKeyError, match="ORDERFLOW_PAYLOAD_KEY_ID"):
        EncryptionCodec({"k1": _key()}, "k9")


async def test_settings_choose_the_keys_and_the_converter_encrypts() -> None:
    assert codec_for(Settings(payload_keys={})).current_key_id == DEVELOPMENT_KEY_ID
    key = _key()
    settings = Settings(payload_keys={"k7": key}, payload_key_id="k7")
    assert codec_for(settings).current_key_id == "k7"
    converter = data_converter(settings)
    (payload,) = await converter.encode([{"email": "ann@example.com"}])
    assert payload.metadata[KEY_ID_METADATA] == b"k7"
    assert await converter.decode([payload], [dict]) == [{"email": "ann@example.com"}]


def test_production_refuses_the_development_key() -> None:
    problems = Settings(
        mode="production", payload_keys={"k1": DEVELOPMENT_KEY}, payload_key_id="k1"
    ).production_problems()
    assert "ORDERFLOW_PAYLOAD_KEYS (key 'k1') is the development key" in problems


async def test_failure_messages_are_encrypted_and_decode_back() -> None:
    converter = data_converter(Settings())
    error = ApplicationError("carrier refused ann@example.com at 1 Main St", type="Refused")
    failure = Failure()
    await converter.encode_failure(error, failure)
    assert b"ann@example.com" not in failure.SerializeToString()
    assert b"Main St" not in failure.SerializeToString()
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError)
    assert decoded.message == "carrier refused ann@example.com at 1 Main St"
    assert decoded.type == "Refused"
    # A failure recorded in plain text before encryption still reads.
    plain = Failure(message="old failure", application_failure_info={"type": "Old"})
    old = await converter.decode_failure(plain)
    assert isinstance(old, ApplicationError) and old.message == "old failure"


def test_the_dev_servers_web_ui_is_pointed_at_the_codec_endpoint() -> None:
    endpoint = "http://localhost:8000/codec"
    server = TemporalDevServer(None, binary=Path("temporal"), ui_codec_endpoint=endpoint)
    argv = server.command()
    assert argv[argv.index("--ui-codec-endpoint") + 1] == endpoint
    # A headless server has no UI to point anywhere.
    headless = TemporalDevServer(
        None, binary=Path("temporal"), ui=False, ui_codec_endpoint=endpoint
    )
    assert "--ui-codec-endpoint" not in headless.command()
