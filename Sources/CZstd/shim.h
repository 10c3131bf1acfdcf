// Why this shim exists: LSM table data blocks are compressed one by one with Zstandard from
// Debian's libzstd-dev (Docs/FORMATS.md, "LSM table", format version 2). Only the library's
// stable API is used (one-shot compression with a reused context, one-shot decompression with a
// reused per-thread context), so the bytes the engine writes are plain zstd frames.
#ifndef SOCIALDB_CZSTD_SHIM_H
#define SOCIALDB_CZSTD_SHIM_H
#include <stddef.h>
#include <zstd.h>
#endif
