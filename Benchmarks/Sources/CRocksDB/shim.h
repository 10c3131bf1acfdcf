#include <stddef.h>
#include <stdint.h>
#include <rocksdb/c.h>
