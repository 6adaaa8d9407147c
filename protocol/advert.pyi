# Host-side types of advert.py (the device code carries no annotations).
from typing import Final

NUS_SERVICE: Final[str]
NUS_RX: Final[str]
NUS_TX: Final[str]
COMPANY_ID: Final[int]
ADV_FORMAT: Final[int]
PAYLOAD_LEN: Final[int]
KIND_FACTORY: Final[int]
KIND_CODES: Final[dict[str, int]]

def advert_payload(node_id: int, kind: str | None) -> bytes: ...
def manufacturer_data(node_id: int, kind: str | None) -> bytes: ...
def parse_advert_payload(payload: bytes | bytearray) -> tuple[int, str | None] | None: ...
