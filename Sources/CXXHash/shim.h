// Why this shim exists: the engine checksums every record and block with XXH3-64 from Debian's
// libxxhash-dev. The library's exported XXH3_64bits_withSeed is called directly; nothing is inlined
// here so the checksum the engine writes is exactly the one the library documents.
#ifndef SOCIALDB_CXXHASH_SHIM_H
#define SOCIALDB_CXXHASH_SHIM_H
#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>
#endif
