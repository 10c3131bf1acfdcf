#include <stddef.h>
#include <stdint.h>
#include <leveldb/c.h>
