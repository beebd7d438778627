"""Internal storage: the ``Storage`` protocol, URIs and their layout, backends, and the KV store.

Backends other than ``local`` live in their own modules and are imported only when configured,
so importing this package pulls in no cloud SDK.
"""

from __future__ import annotations

from tiercel.storage.base import CHUNK_SIZE, ByteStream, FileAttributes, FileType, PutSource, Storage
from tiercel.storage.kv import KVEntry, KVKeyNotFound, KVStore, KVType
from tiercel.storage.local import LocalStorage
from tiercel.storage.uri import InvalidStorageURI, StorageURI

__all__ = [
    "CHUNK_SIZE",
    "ByteStream",
    "FileAttributes",
    "FileType",
    "InvalidStorageURI",
    "KVEntry",
    "KVKeyNotFound",
    "KVStore",
    "KVType",
    "LocalStorage",
    "PutSource",
    "Storage",
    "StorageURI",
]
